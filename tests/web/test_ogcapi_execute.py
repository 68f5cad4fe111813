"""OGC API - Processes execution: synchronous raw and document responses, outputs by value and by
reference (fetched), inputs in every JSON form (plain, qualified, href, bounding box, arrays), the
400s that name the input, and asynchronous execution with Prefer: respond-async."""

from __future__ import annotations

import base64
import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ApiClient, client_of, serve_directory, wait_for
from tests.ogcapi_json import validate, validate_results

EXECUTE = "/processes/{}/execution"
RESULTS_REL = "http://www.opengis.net/def/rel/ogc/1.0/results"


def run(api, process: str, body: dict, **headers: str):  # type: ignore[no-untyped-def]
    return api.post(EXECUTE.format(process), json=body, headers=headers)


def results(response) -> dict:  # type: ignore[no-untyped-def]
    assert (response.status_code, response.mimetype) == (200, "application/json"), response.get_data()
    return validate_results(response.get_json())


@pytest.fixture
def gathering(settings) -> Iterator[ApiClient]:  # type: ignore[no-untyped-def]
    yield from client_of(settings.replace("processing", processes=("tests.processes.gather:PROCESS",)), ApiClient)


# -- synchronous ---------------------------------------------------------------------------------


def test_sync_document(api):
    response = run(api, "say_hello", {"inputs": {"name": "World"}, "response": "document"})
    assert results(response) == {"response": "Hello World"}
    job_url = response.headers["Link"].split(">")[0].lstrip("<")
    status = validate(api.get(job_url.removeprefix("http://testserver")).get_json(), "statusInfo")
    assert (status["status"], status["progress"]) == ("successful", 100)


def test_sync_raw_is_the_default_for_one_output(api):
    response = run(api, "say_hello", {"inputs": {"name": "Raw"}})
    assert (response.status_code, response.mimetype, response.get_data()) == (200, "text/plain", b"Hello Raw")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_sync_raw_complex_output_is_the_file(api):
    text = "<a>échos</a>"
    body = {"inputs": {"complexInput": {"value": text, "mediaType": "text/xml"}}, "outputs": {"complexOutput": {}}}
    response = run(api, "echo", body | {"response": "raw"})
    assert (response.status_code, response.mimetype) == (200, "text/xml")
    assert response.get_data().decode() == text


def test_raw_by_reference_is_a_link_header_to_fetchable_bytes(api):
    body = {
        "inputs": {"name": "Linked"},
        "outputs": {"response": {"transmissionMode": "reference"}},
        "response": "raw",
    }
    response = run(api, "say_hello", body)
    assert response.status_code == 204
    (output,) = [link for link in response.headers.getlist("Link") if RESULTS_REL in link]
    href = output.split(">")[0].lstrip("<")
    assert api.get(href.removeprefix("http://testserver")).get_data() == b"Hello Linked"


def test_raw_with_several_outputs_is_multipart(api):
    body = {
        "inputs": {"literalInput": "lit", "complexInput": {"value": "<a/>", "mediaType": "text/xml"}},
        "outputs": {"literalOutput": {}, "complexOutput": {"transmissionMode": "reference"}},
        "response": "raw",
    }
    response = run(api, "echo", body)
    assert (response.status_code, response.mimetype) == (200, "multipart/related")
    head = f"Content-Type: {response.headers['Content-Type']}\r\n\r\n".encode()
    parts = list(email.message_from_bytes(head + response.get_data(), policy=email.policy.HTTP).iter_parts())
    assert [p["Content-ID"] for p in parts] == ["<literalOutput>", "<complexOutput>"]
    assert (parts[0].get_content_type(), parts[0].get_payload()) == ("text/plain", "lit")
    href = parts[1]["Content-Location"]
    assert (parts[1].get_content_type(), parts[1].get_payload()) == ("text/xml", "")
    assert api.get(href.removeprefix("http://testserver")).get_data() == b"<a/>"


def test_document_by_reference_and_by_value_with_every_kind_of_input(api):
    body = {
        "inputs": {
            "literalInput": "plain",
            "complexInput": {"value": {"a": [1, 2]}, "mediaType": "application/json"},
            "boundingBoxInput": {"bbox": [5.5, 45.0, 10.5, 48.0], "crs": "http://www.opengis.net/def/crs/EPSG/0/4326"},
        },
        "outputs": {
            "literalOutput": {"transmissionMode": "value"},
            "complexOutput": {"transmissionMode": "reference"},
            "boundingBoxOutput": {},
        },
        "response": "document",
    }
    document = results(run(api, "echo", body))
    assert document["literalOutput"] == "plain"
    assert document["boundingBoxOutput"]["bbox"] == [5.5, 45.0, 10.5, 48.0]
    assert document["boundingBoxOutput"]["crs"] == "http://www.opengis.net/def/crs/EPSG/0/4326"
    link = document["complexOutput"]
    assert (link["type"], link["rel"]) == ("application/json", RESULTS_REL)
    fetched = api.get(link["href"].removeprefix("http://testserver"))
    assert (fetched.status_code, fetched.get_json()) == (200, {"a": [1, 2]})


def test_complex_outputs_by_value_as_json_text_or_base64(api, settings):
    echoed = results(run(api, "echo", {"inputs": {"complexInput": {"k": "v"}}, "response": "document"}))
    assert echoed["complexOutput"] == {"mediaType": "application/json", "value": {"k": "v"}}
    text = results(
        run(
            api,
            "echo",
            {"inputs": {"complexInput": {"value": "hi", "mediaType": "text/plain"}}, "response": "document"},
        )
    )
    assert text["complexOutput"] == {"mediaType": "text/plain", "value": "hi"}
    big = results(run(api, "bigoutput", {"inputs": {"size_mb": 1}, "response": "document"}))["output"]
    assert (big["mediaType"], big["encoding"]) == ("application/octet-stream", "base64")
    assert len(base64.b64decode(big["value"])) == 1024**2


def test_input_by_reference_is_fetched(api, tmp_path: Path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "words.txt").write_text("to be or not to be", encoding="utf-8")
    with serve_directory(served) as base:
        body = {"inputs": {"text": {"href": f"{base}/words.txt", "type": "text/plain"}}, "response": "document"}
        document = results(run(api, "wordcounter", body))
    assert document["output"]["value"] == {"to": 2, "be": 2, "or": 1, "not": 1}


def test_input_by_reference_to_a_private_address_is_refused_naming_it(api):
    body = {"inputs": {"text": {"href": "http://169.254.169.254/latest/meta-data"}}, "response": "document"}
    response = run(api, "wordcounter", body)
    assert response.status_code == 400
    problem = response.get_json()
    assert problem["locator"] == "text"
    assert "not an allowed destination" in problem["detail"]


def test_arrays_give_several_values(gathering):
    assert results(run(gathering, "gather", {"inputs": {"number": [1, 2, 39]}, "response": "document"})) == {
        "total": 42
    }
    assert results(run(gathering, "gather", {"inputs": {"number": 5}, "response": "document"})) == {"total": 5}


def test_literal_types_json_numbers_and_booleans(api):
    response = run(api, "sleep", {"inputs": {"delay": 0}, "response": "document"})
    assert results(response) == {"sleep_output": "slept for 0.0 seconds"}


# -- bad requests: 400 naming the part at fault ---------------------------------------------------------


@pytest.mark.parametrize(
    ("process", "body", "locator"),
    [
        ("sleep", {"inputs": {"delay": "abc"}}, "delay"),
        ("sleep", {"inputs": {"delay": 4000}}, "delay"),
        ("sleep", {"inputs": {"delay": {"x": 1}}}, "delay"),
        ("sleep", {"inputs": {"delay": None}}, "delay"),
        ("sleep", {"inputs": {}}, "delay"),
        ("sleep", {"inputs": {"delay": 1, "nap": 2}}, "nap"),
        ("sleep", {"inputs": {"delay": [1, 2]}}, "delay"),
        ("echo", {"inputs": {"boundingBoxInput": {"bbox": [1, 2, 3]}}}, "boundingBoxInput"),
        ("echo", {"inputs": {"boundingBoxInput": {"bbox": [3, 2, 1, 0]}}}, "boundingBoxInput"),
        ("echo", {"inputs": {"boundingBoxInput": {"bbox": [0, 0, 1, 1], "crs": "EPSG:31467"}}}, "boundingBoxInput"),
        ("echo", {"inputs": {"literalInput": {"bbox": [0, 0, 1, 1]}}}, "literalInput"),
        ("echo", {"inputs": {"complexInput": {"value": "x", "mediaType": "image/png"}}}, "complexInput"),
        ("echo", {"inputs": {"complexInput": {"href": ""}}}, "complexInput"),
        ("echo", {"inputs": {"literalInput": "x"}, "outputs": {"nothing": {}}}, "nothing"),
        ("echo", {"outputs": {"literalOutput": {"transmissionMode": "carrier pigeon"}}}, "literalOutput"),
        ("echo", {"outputs": {"complexOutput": {"format": {"mediaType": "image/png"}}}}, "complexOutput"),
        ("echo", {"response": "inline"}, "response"),
        ("echo", {"inputs": []}, "inputs"),
        ("echo", [], "body"),
        ("echo", {"subscriber": {"successUri": "file:///etc/passwd"}}, "subscriber.successUri"),
        ("echo", {"subscriber": {"successUri": "http://x.example/ok", "later": "http://x"}}, "subscriber"),
    ],
)
def test_bad_requests_name_what_is_wrong(api, process, body, locator):
    response = run(api, process, body)
    assert response.status_code == 400, response.get_data()
    problem = response.get_json()
    assert problem["locator"] == locator
    assert locator.split(".")[0] in problem["detail"]


def test_a_body_that_is_not_json(api):
    response = api.post(EXECUTE.format("echo"), data=b"{nope", content_type="application/json")
    assert (response.status_code, response.get_json()["locator"]) == (400, "body")
    response = api.post(EXECUTE.format("echo"), data=b"<Execute/>", content_type="text/xml")
    assert response.status_code == 415
    assert response.headers["Accept-Post"] == "application/json"


def test_execute_of_an_unknown_process(api):
    response = run(api, "nope", {})
    assert response.status_code == 404
    assert response.get_json()["type"].endswith("/no-such-process")


def test_a_failing_process_answers_its_message(api):
    response = run(api, "fail", {"inputs": {"message": "broken on purpose"}, "response": "document"})
    assert response.status_code == 500
    problem = response.get_json()
    assert problem["detail"] == "broken on purpose"
    assert problem["instance"].startswith("http://testserver/jobs/")


def test_a_valid_subscriber_is_accepted(api):
    body = {"inputs": {"name": "cb"}, "subscriber": {"successUri": "https://client.example/done"}}
    assert run(api, "say_hello", body).status_code == 200


# -- asynchronous -------------------------------------------------------------------------------


def test_async_gives_201_location_and_runs_to_results(api, dispatcher):
    response = run(api, "sleep", {"inputs": {"delay": 0.5}, "response": "document"}, Prefer="respond-async")
    assert response.status_code == 201
    assert response.headers["Preference-Applied"] == "respond-async"
    info = validate(response.get_json(), "statusInfo")
    assert (info["status"], info["processID"], info["type"]) == ("accepted", "sleep", "process")
    location = response.headers["Location"]
    assert location == f"http://testserver/jobs/{info['jobID']}"
    path = location.removeprefix("http://testserver")
    done = wait_for(lambda: (s := api.get(path).get_json())["status"] in ("successful", "failed") and s)
    validate(done, "statusInfo")
    assert done["status"] == "successful"
    assert {"started", "finished", "created", "updated"} <= set(done)
    results_link = next(link["href"] for link in done["links"] if link["rel"] == RESULTS_REL)
    assert results(api.get(results_link.removeprefix("http://testserver"))) == {"sleep_output": "slept for 0.5 seconds"}


def test_prefer_async_with_other_preferences(api):
    response = run(api, "sleep", {"inputs": {"delay": 1}}, Prefer="handling=lenient, respond-async; wait=5")
    assert response.status_code == 201


def test_without_prefer_a_process_runs_synchronously(api):
    response = run(api, "sleep", {"inputs": {"delay": 0}})
    assert response.status_code == 200
