"""The portal's error answers: one class per error code, as moto keeps ``exceptions.py``.

The portal answers an error with ``{"error": code, "error_description": text}`` and an HTTP
status. Each class below names one code the emulator answers with and carries the code and
the status as class attributes, so a raise site gives only the text:
``raise NotFound("Item not found")``. Classes whose text never varies have it as their
``description`` and are raised bare: ``raise MethodNotFound()``.

``ApiError`` is the base every REST handler and the server catch; called directly it takes
all three (``ApiError(code, description, status)``) for codes that come from outside, such
as injected faults. Codes, statuses and texts are the real portal's; most method errors are
HTTP 400 there, as here.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error the portal answers with: ``{"error": code, "error_description": ...}``."""

    code: str | int = ""
    status: int = 400

    def __init__(self, code: str | int, description: str, status: int = 400) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.status = status


class PortalError(ApiError):
    """One portal error code: ``code`` and ``status`` come from the class, the text from the
    raise site (or the class's ``description`` when the site gives none)."""

    description: str = ""

    def __init__(self, description: str | None = None) -> None:
        cls = type(self)
        text = cls.description if description is None else description
        super().__init__(cls.code, text, cls.status)


# codes that are not names ---------------------------------------------------------------------
class Uncoded(PortalError):
    """The empty code legacy modules answer with (crm.deal.*, crm.status.*, crm.category.*
    fields, crm.automation.trigger.*, calendar.*): ``{"error": "", ...}``."""

    code = ""


class CodeZero(PortalError):
    """Code ``"0"``: an exception without a code (tasks.task.*, crm.category.*)."""

    code = "0"


class TaskActionNotAllowed(PortalError):
    """Code ``"1048582"`` (the tasks module's ACTION_NOT_ALLOWED, 0x100006): a task action the
    user may not do, or not in the task's status."""

    code = "1048582"
    description = "Action on the task is not allowed"


class ParamError(PortalError):
    """The REST engine's parameter error (``Could not find value for parameter {x}``); the
    code is the JSON number 100."""

    code = 100


class ParamErrorString(PortalError):
    """The same parameter error with the code as the string ``"100"`` (what crm.item.* and
    crm.item.productrow.add answer here for a missing ``fields``)."""

    code = "100"


# auth, limits and the REST engine -------------------------------------------------------------
class NoAuthFound(PortalError):
    """No token, or a webhook code that does not exist."""

    code = "NO_AUTH_FOUND"
    status = 401
    description = "Wrong authorization data"


class InvalidToken(PortalError):
    code = "invalid_token"
    status = 401
    description = "Unable to get application by token"


class ExpiredToken(PortalError):
    """The access token expired: refresh it and repeat the call."""

    code = "expired_token"
    status = 401
    description = "The access token provided has expired."


class ErrorOAuth(PortalError):
    """A token of an app that is no longer installed."""

    code = "ERROR_OAUTH"
    status = 401
    description = "Application not installed"


class InsufficientScope(PortalError):
    code = "insufficient_scope"
    status = 403


class AccessDenied(PortalError):
    code = "ACCESS_DENIED"
    status = 403


class WrongAuthType(PortalError):
    code = "WRONG_AUTH_TYPE"
    status = 403


class MethodNotFound(PortalError):
    code = "ERROR_METHOD_NOT_FOUND"
    status = 404
    description = "Method not found!"


class BatchLengthExceeded(PortalError):
    code = "ERROR_BATCH_LENGTH_EXCEEDED"
    description = "Max batch length exceeded"


class BatchMethodNotAllowed(PortalError):
    code = "ERROR_BATCH_METHOD_NOT_ALLOWED"
    status = 405
    description = "Method is not allowed for batch usage"


class OperationTimeLimit(PortalError):
    """The app's (or webhook's) time on one method in the last 10 minutes ran out."""

    code = "OPERATION_TIME_LIMIT"
    status = 429
    description = "Method is blocked due to operation time limit."


class InternalServerError(PortalError):
    code = "INTERNAL_SERVER_ERROR"
    status = 500
    description = "Internal server error"


class QueryLimitExceeded(PortalError):
    """The leaky bucket is full."""

    code = "QUERY_LIMIT_EXCEEDED"
    status = 503
    description = "Too many requests"


# generic method errors ------------------------------------------------------------------------
class CoreError(PortalError):
    code = "ERROR_CORE"


class InvalidArgs(PortalError):
    """An argument null, empty or wrong (``Argument 'HANDLER' is null or empty``)."""

    code = "ERROR_ARGUMENT"


class InvalidArgValue(PortalError):
    code = "INVALID_ARG_VALUE"


class NotFound(PortalError):
    code = "NOT_FOUND"


class ErrorNotFound(PortalError):
    code = "ERROR_NOT_FOUND"


# crm, im ---------------------------------------------------------------------------------------
class FieldValueNotValid(PortalError):
    code = "CRM_FIELD_ERROR_VALUE_NOT_VALID"


class EntityTypeNotSupported(PortalError):
    code = "ENTITY_TYPE_NOT_SUPPORTED"


class OwnerNotFound(PortalError):
    code = "OWNER_NOT_FOUND"


class WrongDatetimeFormat(PortalError):
    code = "WRONG_DATETIME_FORMAT"


class UserIdEmpty(PortalError):
    code = "USER_ID_EMPTY"


class MessageEmpty(PortalError):
    code = "MESSAGE_EMPTY"


class AttachOversize(PortalError):
    code = "ATTACH_OVERSIZE"


# bizproc, events, placements, messageservice ---------------------------------------------------
class WrongHandlerUrl(PortalError):
    code = "ERROR_WRONG_HANDLER_URL"
    description = "Wrong handler URL"


class UnsupportedProtocol(PortalError):
    code = "ERROR_UNSUPPORTED_PROTOCOL"
    description = "Unsupported handler protocol"


class ActivityValidationFailure(PortalError):
    code = "ERROR_ACTIVITY_VALIDATION_FAILURE"


class ActivityAlreadyInstalled(PortalError):
    code = "ERROR_ACTIVITY_ALREADY_INSTALLED"
    description = "Activity or Robot already installed!"


class ActivityNotFound(PortalError):
    code = "ERROR_ACTIVITY_NOT_FOUND"
    description = "Activity or Robot not found!"


class EmptyLogMessage(PortalError):
    code = "ERROR_EMPTY_LOG_MESSAGE"
    description = "Empty log message!"


class EventNotFound(PortalError):
    code = "ERROR_EVENT_NOT_FOUND"
    description = "Event not found"


class PlacementNotFound(PortalError):
    code = "ERROR_PLACEMENT_NOT_FOUND"
    description = "Placement not found"


class SenderValidationFailure(PortalError):
    code = "ERROR_SENDER_VALIDATION_FAILURE"


class SenderAlreadyInstalled(PortalError):
    code = "ERROR_SENDER_ALREADY_INSTALLED"
    description = "Sender already installed!"


class SenderCodeRequired(PortalError):
    code = "ERROR_SENDER_CODE_REQUIRED"
    description = "CODE is required!"


class SenderNotFound(PortalError):
    code = "ERROR_SENDER_NOT_FOUND"
    description = "Sender not found!"


class SenderOtherParamsRequired(PortalError):
    code = "ERROR_SENDER_OTHER_PARAMS_REQUIRED"
    description = "At least one other parameter is required!"


class MessageNotFound(PortalError):
    code = "ERROR_MESSAGE_NOT_FOUND"
    description = "Message not found!"


class MessageStatusIncorrect(PortalError):
    code = "ERROR_MESSAGE_STATUS_INCORRECT"
    description = "Message status incorrect!"


# catalog -----------------------------------------------------------------------------------------
# The catalogue module's codes are JSON numbers (``"error": 200040300010``), as the docs show.
class CatalogAccessDenied(PortalError):
    """No right to view the trade catalogue."""

    code = 200040300010
    description = "Access Denied"


class IblockNotFound(PortalError):
    """The catalogue's information block does not exist."""

    code = 200040300000
    description = "Iblock Not Found"


# the messenger (im-user-get.md, im-user-list-get.md) -----------------------------------------
class UserNotExists(PortalError):
    code = "USER_NOT_EXISTS"
    description = "User with the specified identifier not found"


class InvalidFormat(PortalError):
    code = "INVALID_FORMAT"
    description = "A wrong format for the ID field is passed"
