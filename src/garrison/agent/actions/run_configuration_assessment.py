"""RunConfigurationAssessment: the assessment collectors evaluate and send every check now."""

from garrison.agent.actions import register_action, resync

register_action("RunConfigurationAssessment")(resync("assessment"))
