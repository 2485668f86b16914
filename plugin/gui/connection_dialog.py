"""Add or edit a connection: STAC API, static catalog, Zarr cube, WTSS or WLTS; auth and S3 options; a test."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt import uic
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QWidget

from ..network import auth_headers, s3_credentials, sends_auth_headers
from ..stac.s3_options import S3Options
from ..stac.sources import Source, SourceKind, guess_kind
from ..tasks.call_task import CallTask
from ..tasks.source_tasks import test_source

_FORM, _ = uic.loadUiType(str(Path(__file__).resolve().parents[2] / "ui" / "connection_dialog.ui"))

KINDS = [(SourceKind.STAC_API, "STAC API"), (SourceKind.STATIC, "Static STAC catalog"), (SourceKind.ZARR, "Zarr cube"),
         (SourceKind.WTSS, "Web Time Series Service (WTSS)"),
         (SourceKind.WLTS, "Web Land Trajectory Service (WLTS)")]
SIGNING = [("", "None"), ("planetary-computer", "Microsoft Planetary Computer (SAS tokens)"),
           ("bdc", "Brazil Data Cube (access token from the auth configuration)")]


class ConnectionDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, source: Source | None = None,
                 taken_names: set[str] | None = None) -> None:
        super().__init__(parent)
        self.form = _FORM()
        self.form.setupUi(self)
        self._taken = (taken_names or set()) - ({source.name} if source else set())
        self._task: CallTask | None = None
        for kind, label in KINDS:
            self.form.kindCombo.addItem(self.tr(label), kind)
        for key, label in SIGNING:
            self.form.signingCombo.addItem(self.tr(label), key)
        self.form.urlEdit.textEdited.connect(self._guess_kind)
        self.form.testButton.clicked.connect(self._test)
        self.form.buttons.button(QDialogButtonBox.StandardButton.Ok).clicked.connect(self._accept)
        if source is not None:
            self._show(source)

    def _show(self, source: Source) -> None:
        self.form.nameEdit.setText(source.name)
        self.form.urlEdit.setText(source.url)
        self.form.kindCombo.setCurrentIndex(self.form.kindCombo.findData(source.kind))
        self.form.signingCombo.setCurrentIndex(max(0, self.form.signingCombo.findData(source.signing)))
        self.form.authSelect.setConfigId(source.authcfg)
        if source.s3 is not None:
            self.form.s3Group.setChecked(True)
            self.form.endpointEdit.setText(source.s3.endpoint)
            self.form.regionEdit.setText(source.s3.region)
            self.form.httpsCheck.setChecked(source.s3.https)
            self.form.virtualHostingCheck.setChecked(source.s3.virtual_hosting)
            self.form.requesterPaysCheck.setChecked(source.s3.requester_pays)

    def _guess_kind(self, url: str) -> None:
        if url.strip():
            self.form.kindCombo.setCurrentIndex(self.form.kindCombo.findData(guess_kind(url.strip())))
        if url.strip().startswith("s3://"):
            self.form.s3Group.setChecked(True)

    def source(self) -> Source:
        """The connection as entered; raises ValueError with what is wrong."""
        name = self.form.nameEdit.text().strip()
        url = self.form.urlEdit.text().strip()
        if not name:
            raise ValueError(self.tr("Give the connection a name."))
        if name in self._taken:
            raise ValueError(self.tr("A connection named '{name}' exists already.").format(name=name))
        if not url:
            raise ValueError(self.tr("Enter the URL or path of the catalog or cube."))
        s3 = None
        if self.form.s3Group.isChecked():
            s3 = S3Options(
                endpoint=self.form.endpointEdit.text().strip(),
                region=self.form.regionEdit.text().strip(),
                requester_pays=self.form.requesterPaysCheck.isChecked(),
                https=self.form.httpsCheck.isChecked(),
                virtual_hosting=self.form.virtualHostingCheck.isChecked(),
            )
        return Source(
            name=name, kind=self.form.kindCombo.currentData(), url=url,
            authcfg=self.form.authSelect.configId(), signing=self.form.signingCombo.currentData(), s3=s3,
        )

    def _accept(self) -> None:
        try:
            self.source()
        except ValueError as error:
            self.form.testResult.setText(str(error))
            return
        self.accept()

    def _test(self) -> None:
        try:
            source = self.source()
            # S3 keys are read here, on the main thread: the test task must not ask the auth manager.
            keys = s3_credentials(source.authcfg) if source.s3 is not None else None
            # A Zarr store on http(s) is read by Cubescope itself (not QGIS's network stack): it needs
            # the auth config's headers, read here too.
            headers = (auth_headers(source.authcfg, source.url)
                       if source.kind == SourceKind.ZARR and sends_auth_headers(source) else None)
        except (ValueError, PermissionError) as error:
            self.form.testResult.setText(str(error))
            return
        self.form.testButton.setEnabled(False)
        self.form.testResult.setText(self.tr("Testing {url}…").format(url=source.url))
        self._task = CallTask(self.tr("Cubescope: testing {name}").format(name=source.name), test_source, source,
                              keys, headers)
        self._task.succeeded.connect(self._tested)
        self._task.failed.connect(self._tested)
        QgsApplication.taskManager().addTask(self._task)

    def _tested(self, message: str) -> None:
        self._task = None
        self.form.testButton.setEnabled(True)
        self.form.testResult.setText(message)

    def done(self, result: int) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        super().done(result)
