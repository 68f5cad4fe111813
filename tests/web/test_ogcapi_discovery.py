"""OGC API - Processes discovery: landing page at the root, conformance, the OpenAPI document,
process list and descriptions; content negotiation; every document against the official schemas."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft4Validator
from schemathesis.specs.openapi.definitions import OPENAPI_30

from app.ogcapi.views import bp
from tests.ogcapi_json import validate

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"


def test_landing_page_at_the_root_links_everything(api):
    response = api.get("/")
    assert (response.status_code, response.mimetype) == (200, "application/json")
    page = validate(response.get_json(), "landingPage")
    links = {link["rel"]: link for link in page["links"]}
    assert links["self"]["href"] == "http://testserver/"
    assert links["service-desc"] == {**links["service-desc"], "href": "http://testserver/api", "type": OPENAPI}
    assert links["service-doc"]["href"] == "http://testserver/api"
    assert links["http://www.opengis.net/def/rel/ogc/1.0/conformance"]["href"] == "http://testserver/conformance"
    assert links["http://www.opengis.net/def/rel/ogc/1.0/processes"]["href"] == "http://testserver/processes"
    assert links["http://www.opengis.net/def/rel/ogc/1.0/job-list"]["href"] == "http://testserver/jobs"
    assert links["alternate"]["href"].startswith("http://testserver/wps?")
    for link in page["links"]:  # each link answers
        path = link["href"].removeprefix("http://testserver")
        assert api.get(path).status_code == 200, link


def test_wps_still_answers_at_wps(wps):
    assert wps.get("/wps?service=WPS&request=GetCapabilities").status_code == 200


def test_conformance_declares_what_is_met(api):
    classes = validate(api.get("/conformance").get_json(), "confClasses")["conformsTo"]
    assert set(classes) == {
        CONF + name
        for name in ("core", "ogc-process-description", "json", "html", "oas30", "job-list", "dismiss", "callback")
    }


def test_openapi_document_describes_exactly_the_routes_served(api, app):
    response = api.get("/api")
    assert response.headers["Content-Type"] == OPENAPI
    document = response.get_json()
    assert document["openapi"].startswith("3.0")
    # A valid OpenAPI 3.0 document (the meta-schema schemathesis carries, the OpenAPI Initiative's own).
    errors = list(Draft4Validator(OPENAPI_30).iter_errors(document))
    assert not errors, [e.message for e in errors]
    assert document["servers"] == [{"url": "http://testserver"}]
    described = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    served = {
        (re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + _camel(m.group(1)) + "}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(f"{bp.name}.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert described == served


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_process_list_and_each_description(api):
    listing = validate(api.get("/processes").get_json(), "processList")
    ids = [p["id"] for p in listing["processes"]]
    assert {"say_hello", "sleep", "echo", "wordcounter", "bigoutput", "fail"} <= set(ids)
    for summary in listing["processes"]:
        validate(summary, "processSummary")
        self_link = next(link["href"] for link in summary["links"] if link["rel"] == "self")
        assert self_link == f"http://testserver/processes/{summary['id']}"
        description = validate(api.get(f"/processes/{summary['id']}").get_json(), "process")
        assert description["id"] == summary["id"]
        for item in [*description["inputs"].values(), *description["outputs"].values()]:
            validate(item["schema"], "schema")


def test_description_carries_types_allowed_values_formats_and_occurrences(api):
    sleep = api.get("/processes/sleep").get_json()
    assert sleep["jobControlOptions"] == ["sync-execute", "async-execute", "dismiss"]
    assert sleep["outputTransmission"] == ["value", "reference"]
    assert sleep["inputs"]["delay"]["schema"] == {"type": "number", "minimum": 0.0, "maximum": 3600.0}
    assert (sleep["inputs"]["delay"]["minOccurs"], sleep["inputs"]["delay"]["maxOccurs"]) == (1, 1)
    execute = next(link for link in sleep["links"] if link["rel"].endswith("/execute"))
    assert execute["href"] == "http://testserver/processes/sleep/execution"
    echo = api.get("/processes/echo").get_json()
    media = {s.get("contentMediaType") for s in echo["inputs"]["complexInput"]["schema"]["anyOf"]}
    assert {"text/xml", "application/xml", "text/plain"} <= media
    bbox = echo["inputs"]["boundingBoxInput"]["schema"]
    assert bbox["required"] == ["bbox"]
    assert "http://www.opengis.net/def/crs/EPSG/0/4326" in bbox["properties"]["crs"]["enum"]
    assert echo["inputs"]["literalInput"]["minOccurs"] == 0
    limit = echo["inputs"]["complexInput"]["additionalParameters"]["parameters"][0]
    assert limit["name"] == "maximumMegabytes" and int(limit["value"][0]) >= 1


def test_unknown_process_is_no_such_process(api):
    response = api.get("/processes/nope")
    assert response.status_code == 404
    assert response.get_json()["type"] == "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-process"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Accept": "*/*"}, {"Accept": "application/json"}, {"Accept": "image/png"}, {"Accept": "text/*;q=0.5, */*"}],
)
def test_json_by_default_whatever_a_client_accepts(api, headers):
    response = api.get("/processes", headers=headers)
    assert (response.status_code, response.mimetype) == (200, "application/json")
    assert "Accept" in response.headers["Vary"]


@pytest.mark.parametrize("headers", [{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, {"Accept": "text/html"}])
def test_a_browser_gets_the_monitor_page(api, headers):
    response = api.get("/processes", headers=headers)
    assert (response.status_code, response.mimetype) == (200, "text/html")
    assert "Accept" in response.headers["Vary"]


def test_f_json_and_an_unknown_f(api):
    assert api.get("/processes?f=json").mimetype == "application/json"
    response = api.get("/processes?f=pdf")
    assert response.status_code == 400
    assert response.get_json()["locator"] == "f"


def test_prefer_on_a_get_is_ignored(api):
    plain = api.get("/processes/echo")
    preferring = api.get("/processes/echo", headers={"Prefer": "respond-async"})
    assert (preferring.status_code, preferring.get_data()) == (200, plain.get_data())
    assert "Preference-Applied" not in preferring.headers


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/"), ("POST", "/processes"), ("GET", "/processes/echo/execution")]
)
def test_wrong_method_is_a_problem_with_allow(api, method, path):
    response = api.open(path, method=method)
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert response.headers["Allow"]
