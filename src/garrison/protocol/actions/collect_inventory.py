"""CollectInventory: send the full software inventory now."""

from garrison.protocol.actions import action_type

COLLECT_INVENTORY = action_type("CollectInventory", api_path="collectInventory")
