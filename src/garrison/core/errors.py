"""Errors of the service layer that interfaces turn into HTTP status codes or CLI messages."""


class GarrisonError(Exception):
    status = 400
    code = "BadRequest"


class NotFound(GarrisonError):
    status = 404
    code = "NotFound"


class Conflict(GarrisonError):
    status = 409
    code = "Conflict"


class Invalid(GarrisonError):
    status = 400
    code = "InvalidRequest"


class Unauthorized(GarrisonError):
    status = 401
    code = "Unauthorized"


class Forbidden(GarrisonError):
    status = 403
    code = "Forbidden"
