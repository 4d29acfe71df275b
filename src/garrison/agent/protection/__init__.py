"""Protection on the device (issue 17): the scan engine, scans, quarantine and the scan action.

* :mod:`.rulepack` — YARA rule packs: versioned data (never code), compiled once and cached;
* :mod:`.hashes` — hash reputation (MD5/SHA1/SHA256 lists such as signature-base's ``hash-iocs.txt``);
* :mod:`.archives` — zip/tar/gzip members, to a bounded depth and size (an archive bomb costs a bounded amount);
* :mod:`.engine` — one file or buffer through every engine (EICAR, hashes, YARA, clamd when present);
* :mod:`.scan` — Quick / Full / Custom scans with progress, cancel, a scan record and bounded CPU;
* :mod:`.quarantine` — the agent-owned quarantine store (move, list, restore exactly, delete);
* :mod:`.action` — the ``RunAntiVirusScan`` machine action and the DeviceEvents rows it reports.

Why yara-python and not yara-x: docs/protection.md (measured on signature-base).
"""
