"""The runtime's errors as dockerd's answers: the category decides the status (NotFound
404, Conflict 409, InvalidArgument 400, anything else 500), the message is the error's own
text, which the runtime words as dockerd does."""

from __future__ import annotations

from dockweb.dockerapi.http import ApiError
from dockweb.runtime.errors import Conflict, DockwebError, InvalidArgument, NotFound


def status_for(err: BaseException) -> int:
    if isinstance(err, ApiError):
        return err.status
    if isinstance(err, NotFound):
        return 404
    if isinstance(err, Conflict):
        return 409
    if isinstance(err, InvalidArgument):
        return 400
    return 500


def as_api_error(err: BaseException) -> ApiError:
    if isinstance(err, ApiError):
        return err
    if isinstance(err, DockwebError):
        return ApiError(status_for(err), str(err))
    return ApiError(500, str(err) or type(err).__name__)
