"""Pure rendering: a loaded estate in, {relative path: file text} out."""

from hermes.render.inventory import render_inventory

__all__ = ["render_inventory"]
