"""Which optional Python packages are missing, and which tested versions to install for them.

Standalone on purpose (standard library only, no imports from the rest of the plugin): the plugin
calls it at load time, before anything that might need the missing packages, and it runs as a script
(``python plugin/dependencies plan``, see ``__main__``).

The versions come from ``locks/<generation>.txt``, uv-compiled locks of ``requirements.txt`` for each
Python/numpy generation we test (``py311-numpy1``...); ``locks/<generation>.system.txt`` names what
the distribution provides, which pip never installs. What is missing goes, pinned, without dependency
resolution, into ``<QGIS profile>/python/cubescope-packages``, which the plugin puts on ``sys.path``
before site-packages: that works on PEP 668 systems and never touches the system's or the user's
site-packages.

Modules, each importing only the ones above it: ``versions`` (PEP 503 names, PEP 440 versions and
specifiers), ``requirements`` (what the plugin wants and what this Python lacks), ``locks`` (the
tested pins of each generation), ``plan`` (what pip installs, where, with which command),
``packages_folder`` (the folder in the QGIS profile and putting it on ``sys.path``), ``cli``.
"""
