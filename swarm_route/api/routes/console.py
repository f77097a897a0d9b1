"""``/ui``: the console, a page and a little plain JS over this same API, served by every ingress replica.

Nothing is fetched from outside this service (no CDN), and a Content-Security-Policy says so to the browser.
The page itself needs no key; every call it makes sends the admin key typed into it (kept in the browser
session only), so the data stays behind the same access control as the API.
"""

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from swarm_route.api.errors import ApiError

router = APIRouter(tags=["console"], include_in_schema=False)
FILES = files("swarm_route.api") / "console"
TYPES = {"console.js": "text/javascript", "console.css": "text/css"}
POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


def _headers() -> dict[str, str]:
    return {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


@router.get("/ui")
async def page() -> HTMLResponse:
    return HTMLResponse((FILES / "index.html").read_text(), headers=_headers())


@router.get("/ui/")
async def slash() -> RedirectResponse:
    return RedirectResponse("/ui")


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    if name not in TYPES:
        raise ApiError(404, f"no console file {name!r}")
    return Response((FILES / name).read_text(), media_type=TYPES[name], headers=_headers())
