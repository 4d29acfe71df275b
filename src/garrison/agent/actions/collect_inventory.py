"""CollectInventory: the inventory collectors send a full inventory on their next (immediate) run."""

from garrison.agent.actions import register_action, resync

register_action("CollectInventory")(resync("inventory"))
