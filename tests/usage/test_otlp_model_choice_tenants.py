"""Review of issue 24's model resolution for OTLP spans: another tenant's private model (or an
alias of it) is not a usable candidate, so it never wins over a catalog model the span also names."""

import pytest

from tests.usage.test_otlp_api import answer, post_protobuf
from tests.usage.test_otlp_dialects import api_key, gateway, spans_with, stored  # noqa: F401 (fixtures)
from usage.models import CallRecord, Model, ModelAlias


@pytest.fixture
def deepseek(db):
    return Model.objects.create(name="public/deepseek-r1")


@pytest.mark.parametrize("private_name", ["alias", "model"])
def test_another_tenants_private_name_does_not_hide_the_requested_catalog_model(  # noqa: F811
    gateway,  # noqa: F811
    api_key,  # noqa: F811
    deepseek,
    other_tenant,
    private_name,
):
    # The operator maps the deployment name another tenant's gateway reports onto its private model.
    private = Model.objects.create(
        name="deepseek-r1" if private_name == "model" else "other/tuned-r1", tenant=other_tenant
    )
    if private_name == "alias":
        ModelAlias.objects.create(name="deepseek-r1", model=private)
    spans = spans_with(
        api_key,
        {
            "gen_ai.request.model": "public/deepseek-r1",
            "gen_ai.response.model": "deepseek-r1",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 2,
        },
    )
    partial = answer(post_protobuf(gateway, spans)).partial_success
    assert partial.rejected_spans == 0, partial.error_message
    assert stored() == [("call-0", "public/deepseek-r1", 10, 2, None, None)]
    assert not CallRecord.objects.filter(model=private).exists()


def test_the_own_tenants_private_alias_still_wins(gateway, api_key, deepseek, tenant):  # noqa: F811
    private = Model.objects.create(name="mine/tuned-r1", tenant=tenant)
    ModelAlias.objects.create(name="deepseek-r1", model=private)
    spans = spans_with(
        api_key,
        {
            "gen_ai.request.model": "public/deepseek-r1",
            "gen_ai.response.model": "deepseek-r1",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 2,
        },
    )
    post_protobuf(gateway, spans)
    assert stored() == [("call-0", "mine/tuned-r1", 10, 2, None, None)]
