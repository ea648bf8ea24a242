"""Product catalogue: list, detail, search, farms (public; a token is optional).

phase0 returns the whole available catalogue in one answer (the seed's "Load All");
phase1+ pages with a keyset cursor on (created_at, id) (seed §3.5). phase2+ serves the
first page and details from Redis (``products:available``, ``product:{id}``, ``farm:{id}``).
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from marketplace.cache import PRODUCTS_AVAILABLE
from marketplace.deps import ID_MAX, get_state, optional_principal
from marketplace.errors import bad_request, not_found, responses
from marketplace.serial import jsonable
from marketplace.state import AppState
from marketplace.validation import clean_query, escape_like

router = APIRouter(
    tags=["catalogue"],
    dependencies=[Depends(clean_query), Depends(optional_principal)],
    responses=responses(401, 422, 429, 503),
)

MAX_PAGE = 100
DEFAULT_PAGE = 50
PRODUCT_COLUMNS = (
    "p.id, p.farm_profile_id, p.name, p.category, p.description, p.price, p.unit,"
    " p.stock_quantity, p.is_available, p.created_at"
)
State = Annotated[AppState, Depends(get_state)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
PathId = Annotated[int, Path(ge=1, le=ID_MAX)]


def encode_cursor(created_at: str, product_id: int) -> str:
    return base64.urlsafe_b64encode(f"{created_at}|{product_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        ts, _, pid = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return dt.datetime.fromisoformat(ts), int(pid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("invalid_cursor", "cursor is not valid") from exc


async def query_products(
    state: AppState,
    *,
    limit: int | None,
    cursor: str | None = None,
    name: str | None = None,
    category: str | None = None,
    farm_id: int | None = None,
) -> dict[str, Any]:
    """Available products newest first; ``limit=None`` means the whole list."""
    where, params = ["p.is_available"], []
    if name:
        where.append("p.name ILIKE %s")  # backslash escapes: % and _ match literally
        params.append(f"%{escape_like(name)}%")
    if category:
        where.append("p.category = %s")
        params.append(category)
    if farm_id is not None:
        where.append("p.farm_profile_id = %s")
        params.append(farm_id)
    if cursor and limit is not None:
        ts, pid = decode_cursor(cursor)
        where.append("(p.created_at, p.id) < (%s, %s)")
        params += [ts, pid]
    sql = (
        f"SELECT {PRODUCT_COLUMNS} FROM products p WHERE {' AND '.join(where)}"
        " ORDER BY p.created_at DESC, p.id DESC"
    )
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit + 1)
    async with await state.db.read() as conn:
        rows = await (await conn.execute(sql, params)).fetchall()
    has_more = limit is not None and len(rows) > limit
    rows = rows[:limit] if limit is not None else rows
    next_cursor = None
    if has_more:
        last = rows[-1]
        next_cursor = encode_cursor(last["created_at"].isoformat(), last["id"])
    return {"products": jsonable(rows), "next_cursor": next_cursor, "has_more": has_more}


@router.get("/products", responses=responses(400))
async def list_products(
    state: State, limit: Limit = DEFAULT_PAGE, cursor: str | None = None
) -> dict[str, Any]:
    """The catalogue: everything at once in phase0, cursor pages from phase1."""
    if not state.profile.paginate_products:
        return await query_products(state, limit=None)
    if cursor is None and limit == DEFAULT_PAGE:
        return await state.cache.cached(
            PRODUCTS_AVAILABLE, lambda: query_products(state, limit=limit)
        )
    return await query_products(state, limit=limit, cursor=cursor)


@router.get("/products/search", responses=responses(400))
async def search_products(
    state: State,
    q: Annotated[str | None, Query(max_length=100)] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    farm_id: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Search by name substring (``%`` and ``_`` match themselves), category and/or farm."""
    page = limit if state.profile.paginate_products else None
    return await query_products(
        state, limit=page, cursor=cursor, name=q, category=category, farm_id=farm_id
    )


async def load_product(state: AppState, product_id: int) -> dict[str, Any] | None:
    async def load() -> dict[str, Any] | None:
        async with await state.db.read() as conn:
            cur = await conn.execute(
                f"SELECT {PRODUCT_COLUMNS}, f.farm_name FROM products p"
                " JOIN farm_profiles f ON f.id = p.farm_profile_id WHERE p.id = %s",
                (product_id,),
            )
            row = await cur.fetchone()
        return jsonable(row) if row else None

    return await state.cache.cached(f"product:{product_id}", load)


@router.get("/products/{product_id}", responses=responses(404))
async def product_detail(state: State, product_id: PathId) -> dict[str, Any]:
    product = await load_product(state, product_id)
    if product is None:
        raise not_found("product")
    return product


@router.get("/farms/{farm_id}", responses=responses(404))
async def farm_detail(state: State, farm_id: PathId) -> dict[str, Any]:
    async def load() -> dict[str, Any] | None:
        async with await state.db.read() as conn:
            cur = await conn.execute(
                "SELECT id, profile_id, farm_name, description, address, zip_code, lon, lat"
                " FROM farm_profiles WHERE id = %s",
                (farm_id,),
            )
            row = await cur.fetchone()
        return jsonable(row) if row else None

    farm = await state.cache.cached(f"farm:{farm_id}", load)
    if farm is None:
        raise not_found("farm")
    return farm
