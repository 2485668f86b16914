"""The search result shown twice and selected once: the tile/date tree and the footprints layer select
the same items whichever of the two the user clicks; each search's footprints replace the last ones."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QItemSelectionModel

from . import footprints
from .results_model import TILE_ROLE, ResultsModel, item_of


class FootprintSelection:
    """Links the selection of ``tree`` (showing ``results``) and of the current footprints ``layer``."""

    def __init__(self, tree: Any, results: ResultsModel) -> None:
        self.tree, self.results = tree, results
        self.layer: QgsVectorLayer | None = None
        self._fids: dict[str, int] = {}  # item id -> its footprint's feature id
        self._syncing = False  # a selection copied to the other side must not be copied back
        tree.selectionModel().selectionChanged.connect(self._tree_selection_changed)

    def show(self, items: list[dict], name: str, tiles: dict[str, str]) -> None:
        """The footprints of ``items`` in a new layer instead of the previous search's."""
        self.new_layer(name)
        self.add(footprints.footprint_features(items, tiles))

    def new_layer(self, name: str) -> None:
        """An empty footprints layer instead of the previous search's, for `add` to fill."""
        project = QgsProject.instance()
        if self.layer is not None and project.mapLayer(self.layer.id()):
            project.removeMapLayer(self.layer.id())
        self.layer = footprints.empty_footprints_layer(name)
        self._fids = {}
        # At the bottom of the layer tree: imagery loaded later draws over the outlines.
        project.addMapLayer(self.layer, False)
        project.layerTreeRoot().addLayer(self.layer)
        self.layer.selectionChanged.connect(self._layer_selection_changed)

    def add(self, features: list) -> None:
        """Footprints built elsewhere (a task's thread), added with one provider call."""
        if self.layer is None or not features:
            return
        fids = footprints.add_footprints(self.layer, features)
        self._fids.update(zip((feature.attribute(0) for feature in features), fids))
        self.layer.triggerRepaint()

    def selected_items(self) -> list[dict]:
        """Selected dates; a selected tile row stands for its whole time stack."""
        chosen: dict[str, dict] = {}
        for index in self.tree.selectionModel().selectedRows(0):
            group = index.data(TILE_ROLE)
            items = list(group.items) if group is not None else [item_of(index)]
            chosen.update({item["id"]: item for item in items if item})
        return list(chosen.values())

    def select_tile(self, tile: str) -> None:
        for row in range(self.results.rowCount()):
            index = self.results.index(row, 0)
            if index.data(TILE_ROLE).tile == tile:
                self.tree.selectionModel().select(
                    index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
                return
        raise KeyError(f"No tile '{tile}' in the search result")

    def _tree_selection_changed(self, *_args) -> None:
        if self._syncing or self.layer is None:
            return
        self._syncing = True
        try:
            ids = {item["id"] for item in self.selected_items()}
            self.layer.selectByIds([self._fids[i] for i in ids if i in self._fids])
        finally:
            self._syncing = False

    def _layer_selection_changed(self, selected, _deselected, _clear) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            ids = set(footprints.ids_of_features(self.layer, self.layer.selectedFeatureIds()))
            selection = self.tree.selectionModel()
            selection.clearSelection()
            for item_id in ids:
                row = self.results.row_for(item_id)
                if row is not None:
                    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
                    selection.select(row.index(), flags)
        finally:
            self._syncing = False
