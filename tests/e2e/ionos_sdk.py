"""Drives regauth's admin API with the official IONOS Container Registry SDK
(PyPI ionoscloud-container-registry), unchanged, as its users would.

Run by tests/e2e/ionos_sdk.rs with the interpreter of .venv/ and:
  REGAUTH_URL          e.g. http://127.0.0.1:40123
  REGAUTH_ADMIN_TOKEN  the admin bearer token
  REGISTRY_ID          a registry that holds no tokens yet (e.g. "default")

Prints one line per check and exits 1 when any check failed.
"""

import datetime
import os
import sys
import traceback
import uuid

from ionoscloud_container_registry import (
    ApiClient,
    ApiException,
    Configuration,
    PatchTokenInput,
    PostTokenInput,
    PostTokenProperties,
    PutTokenInput,
    Scope,
    TokensApi,
)

URL = os.environ["REGAUTH_URL"].rstrip("/")
ADMIN = os.environ["REGAUTH_ADMIN_TOKEN"]
REGISTRY = os.environ["REGISTRY_ID"]
TIMEOUT = 30.0

failures = []


def check(name, cond, detail=""):
    if cond:
        print(f"ok   {name}")
    else:
        print(f"FAIL {name}: {detail}")
        failures.append(name)
    return cond


def expect_status(name, status, fn):
    """fn() must raise ApiException with this HTTP status."""
    try:
        result = fn()
    except ApiException as e:
        return check(name, e.status == status, f"got HTTP {e.status}, body {e.body!r}")
    return check(name, False, f"expected HTTP {status}, the call returned {result!r}")


def later(days):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return t.replace(microsecond=0)


def scopes_of(token):
    return sorted(
        (s.type, s.name, tuple(sorted(s.actions or []))) for s in (token.properties.scopes or [])
    )


def api_for(token):
    config = Configuration(host=URL + "/api/v1", token=token)
    return TokensApi(ApiClient(config))


def section_create(api, ctx):
    expiry = later(30)
    created = api.registries_tokens_post(
        REGISTRY,
        PostTokenInput(
            properties=PostTokenProperties(
                name="sdk-main",
                scopes=[
                    Scope(type="repository", name="team/*", actions=["pull", "push"]),
                    Scope(type="registry", name="catalog", actions=["pull"]),
                ],
                expiry_date=expiry,
                status="enabled",
            )
        ),
        _request_timeout=TIMEOUT,
    )
    tid = created.id
    props = created.properties
    check("create: returns an id", bool(tid), repr(created))
    check("create: type is token", created.type == "token", repr(created.type))
    check("create: href names the token", bool(created.href) and tid in created.href, repr(created.href))
    check("create: name", props.name == "sdk-main", repr(props.name))
    check("create: status enabled", props.status == "enabled", repr(props.status))
    check("create: expiryDate kept", props.expiry_date == expiry, f"{props.expiry_date!r} != {expiry!r}")
    check(
        "create: scopes kept",
        scopes_of(created)
        == [("registry", "catalog", ("pull",)), ("repository", "team/*", ("pull", "push"))],
        repr(scopes_of(created)),
    )
    creds = props.credentials
    check("create: username is the name", creds is not None and creds.username == "sdk-main", repr(creds))
    check(
        "create: password shown once, starts with rga_",
        creds is not None and (creds.password or "").startswith("rga_") and len(creds.password) > 40,
        repr(creds),
    )
    md = created.metadata
    check("create: metadata.createdDate set", md is not None and md.created_date is not None, repr(md))
    check("create: metadata.state AVAILABLE", md is not None and md.state == "AVAILABLE", repr(md))
    ctx.update(tid=tid, expiry=expiry, created=created, names=["sdk-main"])


def section_find(api, ctx):
    tid, created = ctx["tid"], ctx["created"]
    found = api.registries_tokens_find_by_id(REGISTRY, tid, _request_timeout=TIMEOUT)
    check("find_by_id: same id and name", found.id == tid and found.properties.name == "sdk-main", repr(found))
    check(
        "find_by_id: no password any more",
        found.properties.credentials is None or not found.properties.credentials.password,
        repr(found.properties.credentials),
    )
    check("find_by_id: scopes", scopes_of(found) == scopes_of(created), repr(scopes_of(found)))



def section_list(api, ctx):
    names = ctx["names"]
    for suffix in ["e", "a", "d", "b"]:
        n = f"sdk-page-{suffix}"
        api.registries_tokens_post(
            REGISTRY,
            PostTokenInput(
                properties=PostTokenProperties(
                    name=n, scopes=[Scope(type="repository", name="*", actions=["pull"])]
                )
            ),
            _request_timeout=TIMEOUT,
        )
        names.append(n)
    names.sort()
    ctx["names"] = names
    seen = []
    offset = 0
    pages = 0
    while True:
        page = api.registries_tokens_get(REGISTRY, offset=str(offset), limit="2", _request_timeout=TIMEOUT)
        pages += 1
        items = page.items or []
        seen.extend(t.properties.name for t in items)
        check(f"list offset={offset}: total {len(names)}", page.total == len(names), repr(page.total))
        check(f"list offset={offset}: limit 2, offset {offset}", page.limit == 2 and page.offset == offset, f"{page.limit} {page.offset}")
        check(f"list offset={offset}: count = items", page.count == len(items), f"{page.count} vs {len(items)}")
        check(f"list offset={offset}: type collection", page.type == "collection", repr(page.type))
        links = page.links
        check(f"list offset={offset}: _links.self", links is not None and bool(links.var_self), repr(links))
        more = offset + 2 < len(names)
        check(
            f"list offset={offset}: _links.next {'present' if more else 'absent'}",
            links is not None and (bool(links.next) == more),
            repr(links),
        )
        check(
            f"list offset={offset}: _links.previous {'present' if offset > 0 else 'absent'}",
            links is not None and (bool(links.previous) == (offset > 0)),
            repr(links),
        )
        if not more or pages > 10:
            break
        offset += 2
    check("list: pages of 2 cover every token once, sorted by name", seen == names, f"{seen} != {names}")
    everything = api.registries_tokens_get(REGISTRY, _request_timeout=TIMEOUT)
    check(
        "list without offset/limit: all tokens",
        [t.properties.name for t in everything.items or []] == names and everything.total == len(names),
        repr([t.properties.name for t in everything.items or []]),
    )
    check(
        "list: no passwords",
        all(t.properties.credentials is None or not t.properties.credentials.password for t in everything.items or []),
        "a password was listed",
    )



def section_patch(api, ctx):
    tid, expiry = ctx["tid"], ctx["expiry"]
    patched = api.registries_tokens_patch(
        REGISTRY,
        tid,
        PatchTokenInput(
            status="disabled",
            scopes=[Scope(type="repository", name="team/app", actions=["pull", "push", "delete"])],
        ),
        _request_timeout=TIMEOUT,
    )
    check("patch: status disabled", patched.properties.status == "disabled", repr(patched.properties.status))
    check(
        "patch: scopes replaced",
        scopes_of(patched) == [("repository", "team/app", ("delete", "pull", "push"))],
        repr(scopes_of(patched)),
    )
    check("patch: expiryDate untouched", patched.properties.expiry_date == expiry, repr(patched.properties.expiry_date))
    refound = api.registries_tokens_find_by_id(REGISTRY, tid, _request_timeout=TIMEOUT)
    check("patch: persisted", refound.properties.status == "disabled" and scopes_of(refound) == scopes_of(patched), repr(refound))
    cleared = api.registries_tokens_patch(REGISTRY, tid, PatchTokenInput(expiry_date=None), _request_timeout=TIMEOUT)
    check("patch: expiryDate null removes the expiry", cleared.properties.expiry_date is None, repr(cleared.properties.expiry_date))
    check("patch: status untouched by an expiry patch", cleared.properties.status == "disabled", repr(cleared.properties.status))



def section_put(api, ctx):
    tid = ctx["tid"]
    replaced = api.registries_tokens_put(
        REGISTRY,
        tid,
        PutTokenInput(
            properties=PostTokenProperties(
                name="sdk-main",
                status="enabled",
                scopes=[Scope(type="repository", name="prod/*", actions=["pull"])],
            )
        ),
        _request_timeout=TIMEOUT,
    )
    check("put (replace): same id", replaced.id == tid, repr(replaced.id))
    check("put (replace): status", replaced.properties.status == "enabled", repr(replaced.properties.status))
    check("put (replace): scopes", scopes_of(replaced) == [("repository", "prod/*", ("pull",))], repr(scopes_of(replaced)))
    check(
        "put (replace): no new password",
        replaced.properties.credentials is None or not replaced.properties.credentials.password,
        repr(replaced.properties.credentials),
    )
    expect_status(
        "put (replace) with another name: 400",
        400,
        lambda: api.registries_tokens_put(
            REGISTRY,
            tid,
            PutTokenInput(properties=PostTokenProperties(name="sdk-renamed", scopes=[])),
            _request_timeout=TIMEOUT,
        ),
    )
    new_id = str(uuid.uuid4())
    made = api.registries_tokens_put(
        REGISTRY,
        new_id,
        PutTokenInput(
            properties=PostTokenProperties(
                name="sdk-put-new",
                scopes=[Scope(type="repository", name="team/*", actions=["pull"])],
                expiry_date=later(7),
            )
        ),
        _request_timeout=TIMEOUT,
    )
    check("put (create): uses the caller's id", made.id == new_id, repr(made.id))
    check(
        "put (create): password shown",
        made.properties.credentials is not None and (made.properties.credentials.password or "").startswith("rga_"),
        repr(made.properties.credentials),
    )
    check("put (create): status defaults to enabled", made.properties.status == "enabled", repr(made.properties.status))
    found_new = api.registries_tokens_find_by_id(REGISTRY, new_id, _request_timeout=TIMEOUT)
    check("put (create): findable", found_new.properties.name == "sdk-put-new", repr(found_new))
    ctx["names"] = sorted(ctx["names"] + ["sdk-put-new"])


def section_errors(api, ctx):
    tid = ctx["tid"]
    expect_status(
        "find unknown id: 404",
        404,
        lambda: api.registries_tokens_find_by_id(REGISTRY, str(uuid.uuid4()), _request_timeout=TIMEOUT),
    )
    expect_status(
        "find in unknown registry: 404",
        404,
        lambda: api.registries_tokens_find_by_id("no-such-registry", tid, _request_timeout=TIMEOUT),
    )
    expect_status(
        "create duplicate name: 409",
        409,
        lambda: api.registries_tokens_post(
            REGISTRY, PostTokenInput(properties=PostTokenProperties(name="sdk-main", scopes=[])), _request_timeout=TIMEOUT
        ),
    )
    expect_status(
        "put a new id with a taken name: 409",
        409,
        lambda: api.registries_tokens_put(
            REGISTRY,
            str(uuid.uuid4()),
            PutTokenInput(properties=PostTokenProperties(name="sdk-main", scopes=[])),
            _request_timeout=TIMEOUT,
        ),
    )
    bad_scopes = {
        "unknown action": Scope(type="repository", name="team/*", actions=["fly"]),
        "push without pull": Scope(type="repository", name="team/*", actions=["push"]),
        "unknown type": Scope(type="namespace", name="team", actions=["pull"]),
        "bad pattern characters": Scope(type="repository", name="Team/App", actions=["pull"]),
        "registry scope other than catalog": Scope(type="registry", name="tags", actions=["pull"]),
        "no actions": Scope(type="repository", name="team/*", actions=[]),
    }
    for what, bad in bad_scopes.items():
        expect_status(
            f"create with a bad scope ({what}): 400",
            400,
            lambda bad=bad: api.registries_tokens_post(
                REGISTRY,
                PostTokenInput(properties=PostTokenProperties(name="sdk-bad", scopes=[bad])),
                _request_timeout=TIMEOUT,
            ),
        )
    for bad_name in ["Sdk-Upper", "ab", "-lead", "trail-", "under_score"]:
        expect_status(
            f"create with a bad name {bad_name!r}: 400",
            400,
            lambda n=bad_name: api.registries_tokens_post(
                REGISTRY, PostTokenInput(properties=PostTokenProperties(name=n, scopes=[])), _request_timeout=TIMEOUT
            ),
        )
    expect_status(
        "create with an expiry in the past: 400",
        400,
        lambda: api.registries_tokens_post(
            REGISTRY,
            PostTokenInput(properties=PostTokenProperties(name="sdk-past", scopes=[], expiry_date=later(-1))),
            _request_timeout=TIMEOUT,
        ),
    )
    expect_status(
        "patch with a bad status: 400",
        400,
        lambda: api.registries_tokens_patch(REGISTRY, tid, PatchTokenInput(status="paused"), _request_timeout=TIMEOUT),
    )
    expect_status(
        "wrong admin token: 401",
        401,
        lambda: api_for("not-the-admin-token").registries_tokens_get(REGISTRY, _request_timeout=TIMEOUT),
    )
    check(
        "errors left no token behind",
        sorted(t.properties.name for t in api.registries_tokens_get(REGISTRY, _request_timeout=TIMEOUT).items or [])
        == ctx["names"],
        "unexpected tokens after the error cases",
    )


def section_lifecycle(api, ctx):
    """Issue 12: a rotated, used token still lists and reads through the SDK."""
    import base64
    import json
    import urllib.request

    tid = ctx["tid"]
    req = urllib.request.Request(
        f"{URL}/api/v1/registries/{REGISTRY}/tokens/{tid}/credentials",
        data=json.dumps({"gracePeriodSeconds": 3600}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        rotated = json.load(r)
    password = rotated["properties"]["credentials"]["password"]
    check("rotate: new password", password.startswith("rga_"), repr(rotated["properties"]))
    check(
        "rotate: previousPasswordExpiryDate",
        bool(rotated["properties"].get("previousPasswordExpiryDate")),
        repr(rotated["properties"]),
    )
    basic = base64.b64encode(f"sdk-main:{password}".encode()).decode()
    auth = urllib.request.Request(
        f"{URL}/auth?service=registry.local&scope=repository:team/app:pull",
        headers={"Authorization": f"Basic {basic}"},
    )
    with urllib.request.urlopen(auth, timeout=TIMEOUT) as r:
        check("rotate: the new password authenticates", r.status == 200, str(r.status))

    found = api.registries_tokens_find_by_id(REGISTRY, tid, _request_timeout=TIMEOUT)
    check("lifecycle: find_by_id parses a used, rotated token", found.id == tid, repr(found))
    check("lifecycle: still no password", not (found.properties.credentials and found.properties.credentials.password), repr(found.properties.credentials))
    check("lifecycle: metadata parses", found.metadata is not None and found.metadata.created_date is not None, repr(found.metadata))
    get = urllib.request.Request(
        f"{URL}/api/v1/registries/{REGISTRY}/tokens/{tid}",
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    with urllib.request.urlopen(get, timeout=TIMEOUT) as r:
        body = json.load(r)
    check("lifecycle: lastUsedDate in the reply the SDK parsed", bool(body["metadata"].get("lastUsedDate")), repr(body["metadata"]))
    page = api.registries_tokens_get(REGISTRY, _request_timeout=TIMEOUT)
    mine = [t for t in page.items if t.id == tid]
    check("lifecycle: list parses it", len(mine) == 1, repr([t.id for t in page.items]))


def section_delete(api, ctx):
    tid = ctx["tid"]
    api.registries_tokens_delete(REGISTRY, tid, _request_timeout=TIMEOUT)
    check("delete: done", True)
    expect_status(
        "find after delete: 404",
        404,
        lambda: api.registries_tokens_find_by_id(REGISTRY, tid, _request_timeout=TIMEOUT),
    )
    expect_status(
        "delete again: 404",
        404,
        lambda: api.registries_tokens_delete(REGISTRY, tid, _request_timeout=TIMEOUT),
    )
    after = api.registries_tokens_get(REGISTRY, _request_timeout=TIMEOUT)
    check("list after delete: one fewer", after.total == len(ctx["names"]) - 1, f"total {after.total}")


SECTIONS = [
    section_create,
    section_find,
    section_list,
    section_patch,
    section_put,
    section_errors,
    section_lifecycle,
    section_delete,
]


def main():
    api = api_for(ADMIN)
    ctx = {}
    for section in SECTIONS:
        name = section.__name__.removeprefix("section_")
        print(f"--- {name}")
        try:
            section(api, ctx)
        except Exception as e:  # report, then go on: later sections say more
            print(f"FAIL {name}: unexpected {type(e).__name__}")
            traceback.print_exc(file=sys.stdout)
            failures.append(f"{name} (exception)")


if __name__ == "__main__":
    main()
    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
        sys.exit(1)
    print("all IONOS SDK checks passed")
