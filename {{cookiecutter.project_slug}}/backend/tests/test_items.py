"""The items resource's conventions, the same wherever the items are kept: 201 with a
Location, 409 on a taken name, exact money, bounded integers."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient


def post(client: TestClient, **fields: Any) -> httpx2.Response:
    return client.post("/api/v1/items", json={"name": "pen", "price": "1.50", **fields})


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = post(client, **fields)
    assert response.status_code == 201
    item: dict[str, Any] = response.json()
    return item


def test_create_then_get(client: TestClient) -> None:
    created = create(client, description="blue", price=1.5)

    # Money as an exact decimal string, to the cent; created_at set by the service.
    assert created == {
        "id": created["id"],
        "name": "pen",
        "description": "blue",
        "price": "1.50",
        "created_at": created["created_at"],
    }
    created_at = datetime.fromisoformat(created["created_at"])
    assert created_at.tzinfo is not None
    assert abs(datetime.now(UTC) - created_at) < timedelta(minutes=5)
    assert client.get(f"/api/v1/items/{created['id']}").json() == created


def test_a_new_item_is_201_with_its_location(client: TestClient) -> None:
    response = post(client)

    assert response.status_code == 201
    assert response.headers["location"] == f"/api/v1/items/{response.json()['id']}"
    assert client.get(response.headers["location"]).json() == response.json()


def test_a_taken_name_is_409_and_leaves_the_first_item_alone(client: TestClient) -> None:
    first = post(client, price="2.00").json()

    response = post(client, price="3.00")

    assert response.status_code == 409
    assert response.json() == {"detail": "An item with this name exists"}
    assert client.get("/api/v1/items").json() == [first]


def test_a_deleted_items_name_is_free_again(client: TestClient) -> None:
    client.delete(f"/api/v1/items/{create(client)['id']}")

    assert post(client).status_code == 201


def test_money_is_kept_exactly(client: TestClient) -> None:
    prices = ["0.10", "0.20", "9999999999.99"]
    for number, price in enumerate(prices):
        create(client, name=f"item {number}", price=price)

    kept = [item["price"] for item in client.get("/api/v1/items").json()]

    assert kept == prices
    assert sum(Decimal(price) for price in kept[:2]) == Decimal("0.30")


@pytest.mark.parametrize("price", ["1.505", "10000000000.00", "-1", "NaN"])
def test_a_price_beyond_the_cent_or_ten_digits_is_422(client: TestClient, price: str) -> None:
    response = post(client, price=price)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "price"]]


def test_list_pages_through_items(client: TestClient) -> None:
    ids = [create(client, name=f"item {n}")["id"] for n in range(3)]

    assert [item["id"] for item in client.get("/api/v1/items").json()] == ids
    page = client.get("/api/v1/items", params={"offset": 1, "limit": 1}).json()
    assert [item["id"] for item in page] == ids[1:2]


def test_delete_removes_the_item(client: TestClient) -> None:
    item_id = create(client)["id"]

    assert client.delete(f"/api/v1/items/{item_id}").status_code == 204
    assert client.get(f"/api/v1/items/{item_id}").status_code == 404
    assert client.delete(f"/api/v1/items/{item_id}").status_code == 404


def test_unknown_item_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/items/999")

    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": 1}, "name"),
        ({"name": "", "price": 1}, "name"),
        ({"name": "pen", "price": -1}, "price"),
        ({"name": "pen"}, "price"),
    ],
)
def test_invalid_item_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/items", json=body)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("/api/v1/items/not-a-number", ["path", "item_id"]),
        ("/api/v1/items?limit=0", ["query", "limit"]),
        ("/api/v1/items?limit=101", ["query", "limit"]),
        ("/api/v1/items?offset=-1", ["query", "offset"]),
        # Found by a fuzzer: a number beyond any integer column once answered 500.
        ("/api/v1/items?offset=1234567890123456789012345", ["query", "offset"]),
        ("/api/v1/items/99999999999", ["path", "item_id"]),
        ("/api/v1/items/0", ["path", "item_id"]),
    ],
)
def test_invalid_parameters_are_422(client: TestClient, url: str, location: list[str]) -> None:
    response = client.get(url)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [location]
