"""RunAntiVirusScan: a Quick, Full or Custom scan (parameters: ``garrison.protocol.protection.ScanParams``);
requested by ``POST /api/machines/{id}/runAntiVirusScan`` (``server/api/protection.py``, Defender's body)."""

from garrison.protocol.actions import action_type
from garrison.protocol.protection import RUN_ANTIVIRUS_SCAN, ScanParams

RUN_ANTIVIRUS_SCAN_TYPE = action_type(RUN_ANTIVIRUS_SCAN, ScanParams)
