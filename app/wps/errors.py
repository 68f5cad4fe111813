"""OWS exceptions: raised anywhere in request handling, rendered as an ExceptionReport.

OWS 1.1 for WPS 1.0.0 requests, OWS 2.0 for WPS 2.0 ones. The content type is ``text/xml`` exactly,
as OWSLib recognises only that.
"""

from __future__ import annotations

from lxml import etree

from app.wps.namespaces import OWS1, OWS2, OWS11, OWS20, XML_LANG, XSI_SCHEMA_LOCATION

CONTENT_TYPE = "text/xml"

HTTP_STATUS = {
    "OperationNotSupported": 501,
    "OptionNotSupported": 501,
    "NoApplicableCode": 500,
    "InternalServerError": 500,
    "ServerBusy": 503,
    "FileSizeExceeded": 413,
    "NotEnoughStorage": 507,
}


class OWSException(Exception):
    def __init__(
        self,
        code: str,
        text: str,
        locator: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.locator = locator
        self.status = status or HTTP_STATUS.get(code, 400)
        self.headers = headers or {}  # sent with the report (WWW-Authenticate on a 401)


def missing(locator: str) -> OWSException:
    return OWSException("MissingParameterValue", f"the parameter {locator} is missing", locator)


def invalid(locator: str, text: str) -> OWSException:
    return OWSException("InvalidParameterValue", text, locator)


def render_exception(exc: OWSException, version: str, language: str = "en-US") -> bytes:
    if version.startswith("2"):
        maker, report_version = OWS2, "2.0.0"
        location = f"{OWS20} http://schemas.opengis.net/ows/2.0/owsExceptionReport.xsd"
    else:
        maker, report_version = OWS1, "1.0.0"
        location = f"{OWS11} http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd"
    root = maker.ExceptionReport(
        maker.Exception(
            maker.ExceptionText(exc.text),
            exceptionCode=exc.code,
            locator=exc.locator,
        ),
        {XSI_SCHEMA_LOCATION: location, XML_LANG: language},
        version=report_version,
    )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
