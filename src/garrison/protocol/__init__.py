"""Wire models shared by the agent and the server."""

from garrison.protocol.models import *
