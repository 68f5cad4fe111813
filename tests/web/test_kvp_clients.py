"""KVP Execute as clients build it: with ``requests``' ``params``, with JavaScript's ``URLSearchParams``,
or by hand with literal separators (``app/wps/parse_kvp.py`` tells the forms apart).

Each test sends the exact query string such a client produces and checks what it gets back: the
outputs' bytes, or the OWS exception of a request that stays wrong however it is encoded. OWSLib is
not among the clients: it sends Execute as XML only.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

import pytest
import requests

from tests.conftest import serve_directory
from tests.xsd import OWS11, WPS10

BASE = {"service": "WPS", "version": "1.0.0", "request": "Execute"}
K10 = "/wps?service=WPS&version=1.0.0&request=Execute"
XLINK = "http://www.w3.org/1999/xlink"
PAYLOAD = json.dumps({"a": [1, 2], "b": "x y"})


def requests_query(params: dict[str, str]) -> str:
    """The path and query Python's ``requests`` puts on the wire for ``params``."""
    url = requests.Request("GET", "http://testserver/wps", params={**BASE, **params}).prepare().url
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def url_search_params_query(params: dict[str, str]) -> str:
    """The path and query of ``new URLSearchParams(params).toString()``: the WHATWG urlencoded serializer
    keeps ``*-._`` and ASCII letters and digits, writes a space as ``+`` and percent-encodes the rest
    (``~`` too, which Python's ``quote_plus`` keeps)."""
    pairs = {**BASE, **params}.items()
    return "/wps?" + "&".join(
        f"{quote_plus(k, safe='*').replace('~', '%7E')}={quote_plus(v, safe='*').replace('~', '%7E')}" for k, v in pairs
    )


def outputs(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Output identifier to its LiteralData or ComplexData text, from an ExecuteResponse."""
    assert response.status_code == 200, response.get_data(as_text=True)
    found = {}
    for output in response.xml.iterfind(f".//{{{WPS10}}}ProcessOutputs/{{{WPS10}}}Output"):
        data = output.find(f"{{{WPS10}}}Data")
        found[output.findtext(f"{{{OWS11}}}Identifier")] = "".join(data[0].itertext())
    return found


def test_a_requests_url_runs(wps):
    query = requests_query({"identifier": "say_hello", "DataInputs": "name=World"})
    assert "DataInputs=name%3DWorld" in query  # the form PyWPS and GeoServer read
    assert outputs(wps.get(query)) == {"response": "Hello World"}


def test_a_url_search_params_url_runs_with_plus_for_space(wps):
    query = url_search_params_query({"identifier": "say_hello", "DataInputs": "name=Ada & C++ fans~"})
    assert "DataInputs=name%3DAda+%26+C%2B%2B+fans%7E" in query
    assert outputs(wps.get(query)) == {"response": "Hello Ada & C++ fans~"}


def test_several_inputs_with_attributes_encoded_as_a_whole(wps):
    query = requests_query(
        {"identifier": "echo", "DataInputs": f"literalInput=two words;complexInput={PAYLOAD}@mimeType=application/json"}
    )
    response = wps.get(query)
    found = outputs(response)
    assert found["literalOutput"] == "two words"
    assert json.loads(found["complexOutput"]) == json.loads(PAYLOAD)
    complex_data = response.xml.find(f".//{{{WPS10}}}ComplexData")
    assert complex_data.get("mimeType") == "application/json"


def test_a_value_the_client_encoded_keeps_its_separators(wps):
    """Encoding the value before handing ``id=value`` to the URL builder, as a PyWPS client does."""
    value = "a;b=c@d e+f 100%"
    query = requests_query({"identifier": "echo", "DataInputs": f"literalInput={quote(value, safe='')}"})
    assert outputs(wps.get(query)) == {"literalOutput": value}


def test_literal_separators_with_encoded_separators_in_values(wps):
    query = f"{K10}&identifier=echo&DataInputs=literalInput=a%3Bb%3Dc%40d;complexInput=x%3By%40z@mimeType=text/plain"
    assert outputs(wps.get(query)) == {"literalOutput": "a;b=c@d", "complexOutput": "x;y@z"}


def test_plus_is_a_space_with_literal_separators_too(wps):
    """As in every other parameter, and as PyWPS and GeoServer read it: ``quote_plus`` builds such values."""
    query = f"{K10}&identifier=say_hello&DataInputs=name={quote_plus('Ada Lovelace+1')}"
    assert outputs(wps.get(query)) == {"response": "Hello Ada Lovelace+1"}


@pytest.fixture
def words_url(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A text served over HTTP; its URL has a query of its own, with ``=`` and ``&`` in it."""
    (tmp_path / "words.txt").write_text("one two two", encoding="utf-8")
    with serve_directory(tmp_path) as base:
        yield f"{base}/words.txt?x=1&y=2"


@pytest.mark.parametrize("form", ["literal", "whole"])
def test_an_input_by_reference_with_its_mime_type(wps, words_url: str, form: str):
    if form == "literal":
        href = quote(words_url, safe="")
        query = f"{K10}&identifier=wordcounter&lineage=true&DataInputs=text=@xlink:href={href}@mimeType=text/plain"
    else:
        query = requests_query(
            {
                "identifier": "wordcounter",
                "lineage": "true",
                "DataInputs": f"text=@xlink:href={words_url}@mimeType=text/plain",
            }
        )
    response = wps.get(query)
    assert json.loads(outputs(response)["output"]) == {"two": 2, "one": 1}
    (reference,) = response.xml.iterfind(f".//{{{WPS10}}}DataInputs/{{{WPS10}}}Input/{{{WPS10}}}Reference")
    assert reference.get(f"{{{XLINK}}}href") == words_url  # the lineage: the whole URL, its query too
    assert reference.get("mimeType") == "text/plain"


@pytest.mark.parametrize("form", ["literal", "whole"])
def test_response_document_output_as_reference_with_its_mime_type(wps, form: str):
    inputs = f"complexInput={PAYLOAD}@mimeType=application/json"
    document = "complexOutput@mimeType=application/json@asReference=true"
    if form == "literal":
        query = f"{K10}&identifier=echo&DataInputs={quote(inputs, safe='=@')}&ResponseDocument={document}"
    else:
        query = requests_query({"identifier": "echo", "DataInputs": inputs, "ResponseDocument": document})
    response = wps.get(query)
    assert response.status_code == 200, response.get_data(as_text=True)
    (reference,) = response.xml.iterfind(f".//{{{WPS10}}}Reference")
    assert reference.get("mimeType") == "application/json"
    download = wps.get(reference.get("href").replace("http://testserver", ""))
    assert download.status_code == 200 and download.mimetype == "application/json"
    assert json.loads(download.get_data()) == json.loads(PAYLOAD)


@pytest.mark.parametrize("form", ["literal", "whole"])
def test_raw_data_output_with_its_mime_type(wps, form: str):
    inputs = "complexInput=plain words@mimeType=text/plain"
    if form == "literal":
        query = f"{K10}&identifier=echo&DataInputs={quote(inputs, safe='=@/')}&RawDataOutput=complexOutput@mimeType=text/plain"
    else:
        query = url_search_params_query(
            {"identifier": "echo", "DataInputs": inputs, "RawDataOutput": "complexOutput@mimeType=text/plain"}
        )
    response = wps.get(query)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    assert response.get_data() == b"plain words"


@pytest.mark.parametrize(
    ("params", "code", "locator", "text"),
    [
        ({"identifier": "say_hello", "DataInputs": "name;"}, "InvalidParameterValue", "DataInputs", "input name has"),
        ({"identifier": "say_hello", "DataInputs": "=World"}, "InvalidParameterValue", "DataInputs", "no identifier"),
        (
            {"identifier": "say_hello", "DataInputs": "name=World@colour=blue"},
            "InvalidParameterValue",
            "DataInputs",
            "'colour'",
        ),
        ({"identifier": "say_hello", "DataInputs": ";;"}, "MissingParameterValue", "name", ""),
        ({"identifier": "say_hello", "DataInputs": "nobody=World"}, "InvalidParameterValue", "nobody", ""),
        (
            {"identifier": "say_hello", "DataInputs": "name=a", "ResponseDocument": "response@asReference=perhaps"},
            "InvalidParameterValue",
            "response",
            "asReference",
        ),
        (
            {"identifier": "echo", "DataInputs": "literalInput=a", "RawDataOutput": "literalOutput;complexOutput"},
            "InvalidParameterValue",
            "RawDataOutput",
            "exactly one",
        ),
    ],
    ids=[
        "no-value",
        "no-identifier",
        "unknown-attribute",
        "only-separators",
        "unknown-input",
        "bad-boolean",
        "two-raw",
    ],
)
def test_a_wrong_request_encoded_as_a_whole_gets_its_exception(wps, params, code, locator, text):
    response = wps.get(requests_query(params))
    assert response.status_code == 400
    exception = response.xml.find(f"{{{OWS11}}}Exception")
    assert (exception.get("exceptionCode"), exception.get("locator")) == (code, locator)
    assert text in exception.findtext(f"{{{OWS11}}}ExceptionText")


def test_requests_against_the_served_wps(live_server):
    """gunicorn hands the query string over as ``requests`` wrote it."""
    params = {**BASE, "identifier": "say_hello", "DataInputs": "name=World & co", "RawDataOutput": "response"}
    response = requests.get(live_server.url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    assert response.text == "Hello World & co"
