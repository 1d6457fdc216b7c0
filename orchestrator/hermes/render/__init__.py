"""Pure rendering: a loaded estate in, {relative path: file text} out."""

from hermes.render.inventory import PLACEMENT_FILE, render_inventory

__all__ = ["PLACEMENT_FILE", "render_inventory"]
