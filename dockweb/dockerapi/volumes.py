"""Engine API: volumes (list, create, inspect, remove, prune), through the services the CLI
and the pages use (``containers.services``, ``disk.services``): each change is mirrored into
the database there, and journaled as dockerd's events by the runtime."""

from __future__ import annotations

from dockweb.dockerapi.http import ApiError, Json, Raw, Request, bad_request
from dockweb.dockerapi.router import Routes
from dockweb.runtime.errors import VolumeNotFound

routes = Routes()


def _get(name: str) -> dict:
    from containers import services

    try:
        return services.get_volume(name)
    except VolumeNotFound:
        raise ApiError(404, f"get {name}: no such volume") from None


@routes.get("/volumes")
def volume_list(req: Request) -> Json:
    from containers import services

    return Json({"Volumes": services.list_volumes(req.qfilters()), "Warnings": None})


@routes.post("/volumes/create", audit="volume.create")
def volume_create(req: Request) -> Json:
    from containers import services

    body = req.json({}) or {}
    if not isinstance(body, dict):
        raise bad_request("json: cannot unmarshal into Go value of type volume.CreateOptions")
    name = body.get("Name") or ""
    labels = body.get("Labels") or {}
    if not isinstance(name, str) or not isinstance(labels, dict):
        raise bad_request("json: cannot unmarshal into Go value of type volume.CreateOptions")
    name = services.create_volume(
        name,
        {str(k): str(v) for k, v in labels.items()},
        driver=body.get("Driver") or "",
        options=body.get("DriverOpts") or None,
    )
    return Json(_get(name), status=201)


@routes.get("/volumes/{name}")
def volume_inspect(req: Request) -> Json:
    return Json(_get(req.params["name"]))


@routes.delete("/volumes/{name}", audit="volume.remove", target="name")
def volume_remove(req: Request) -> Raw:
    from containers import services

    services.remove_volume(req.params["name"], force=req.qbool("force"))
    return Raw(b"", status=204, content_type=None)


@routes.post("/volumes/prune", audit="volume.prune")
def volume_prune(req: Request) -> Json:
    from disk import services
    from dockweb.runtime.diskusage import InvalidPruneFilter

    try:
        names, space = services.prune_volumes(filters=req.qfilters())
    except InvalidPruneFilter as err:
        raise bad_request(str(err)) from None
    return Json({"VolumesDeleted": names, "SpaceReclaimed": space})
