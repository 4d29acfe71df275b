"""RunConfigurationAssessment: evaluate the configuration checks now and send every result."""

from garrison.protocol.actions import action_type

RUN_CONFIGURATION_ASSESSMENT = action_type("RunConfigurationAssessment", api_path="runConfigurationAssessment")
