"""DWBase as a WASI Preview 2 component (docs/component.md).

* :mod:`dwbase.component.config` — the ``DWBASE_*`` variables the host sets;
* :mod:`dwbase.component.service` — what each WIT function does, on plain dicts;
* ``guest/app.py`` — the componentize-py entry point: WIT records in, dicts to the service,
  WIT records out; never lets an exception reach the host;
* :mod:`dwbase.component.build` — ``dwbase component build``;
* :mod:`dwbase.component.host` — load the component under wasmtime (tests, pack runner).

Nothing here imports sqlite3 or numpy: the store is :class:`dwbase.storage.log.LogStorage`.
"""
