"""The route template a request matched: the name it is reported under, never its raw path."""

from starlette.types import Scope

UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The matched route's template (`/api/v1/items/{item_id}`), else `UNMATCHED_ROUTE`.

    Read after the application has handled the request: routing fills the scope in.
    """
    # FastAPI shares one route object among the routers including it, so the template with
    # every include prefix lives on the request's effective route context, when there is one.
    fastapi_scope = scope.get("fastapi")
    route = fastapi_scope.get("effective_route_context") if fastapi_scope else None
    if route is None:
        route = scope.get("route")
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE
