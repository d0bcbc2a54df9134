"""Tracing settings that cannot be honoured are refused when the settings are read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from runtime import settings as settings_module
from runtime.settings import Settings


def test_an_otlp_endpoint_without_its_exporter_package_is_refused_naming_both(monkeypatch):
    # As here: opentelemetry-sdk installed (the dev lock), its OTLP exporter in neither lock.
    monkeypatch.setattr(settings_module, "_importable", lambda module: "otlp" not in module)
    with pytest.raises(ValidationError) as refused:
        Settings(tracing=True, otlp_endpoint="http://collector:4317")
    assert "CASN_OTLP_ENDPOINT='http://collector:4317'" in str(refused.value)
    assert "opentelemetry-exporter-otlp-proto-grpc" in str(refused.value)
    Settings(tracing=True)  # without the endpoint the spans are logged: accepted


def test_tracing_without_opentelemetry_sdk_is_refused_naming_the_extra(monkeypatch):
    monkeypatch.setattr(settings_module, "_importable", lambda module: False)
    with pytest.raises(ValidationError, match=r"CASN_TRACING=true needs opentelemetry-sdk"):
        Settings(tracing=True)
