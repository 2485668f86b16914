"""Make pyqtgraph work inside QGIS.

Once QGIS's bindings are loaded, Qt's "no parent" / "no scene" (a null QGraphicsItem* or
QGraphicsScene* in a QVariant) reaches Python's itemChange as an unconvertible QVariant, and
handing it back to QGraphicsObject.itemChange fails with "unable to convert a QVariant back to a
Python object" (pyqtgraph issue #774). It happens each time a curve or marker leaves a plot, so
every plot update would log Python errors. Such a value means "none": None is returned for it
(what Qt's base implementation returns), after pyqtgraph's own bookkeeping for the change. The
patch is process-wide (other plugins' plots are fixed too), idempotent, and leaves every change
with a real value to pyqtgraph.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QVariant

_MARK = "_cubescope_qvariant_fix"


def install() -> None:
    from pyqtgraph.graphicsItems.GraphicsObject import GraphicsObject

    original = GraphicsObject.itemChange
    if getattr(original, _MARK, False):
        return
    changes = GraphicsObject.GraphicsItemChange
    parent_or_scene = (changes.ItemParentHasChanged, changes.ItemSceneHasChanged)

    def item_change(self, change, value):
        if not isinstance(value, QVariant):
            return original(self, change, value)
        if change in parent_or_scene:
            self.changeParent()
        return None

    setattr(item_change, _MARK, True)
    GraphicsObject.itemChange = item_change
