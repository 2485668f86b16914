"""Authentication configurations in QGIS's auth manager, as the tests need them."""

from __future__ import annotations

from collections.abc import Mapping

from qgis.core import QgsApplication, QgsAuthMethodConfig


def store_auth_config(method: str, name: str, values: Mapping[str, str]) -> str:
    """Store a ``method`` configuration (Basic, EsriToken, ...) with ``values``; returns its id.

    The test auth database gets a master password first; the system keychain is switched off, since
    test machines have none and QGIS would wait for one.
    """
    manager = QgsApplication.authManager()
    manager.setPasswordHelperEnabled(False)
    assert not manager.isDisabled(), manager.disabledMessage()
    assert manager.setMasterPassword("cubescope-tests", True), "the test auth database refused the password"
    config = QgsAuthMethodConfig(method)
    config.setName(name)
    for key, value in values.items():
        config.setConfig(key, value)
    stored = manager.storeAuthenticationConfig(config)
    assert stored[0] if isinstance(stored, tuple) else stored
    return (stored[1] if isinstance(stored, tuple) else config).id()
