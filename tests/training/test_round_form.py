"""The round launch form: built from the training defaults and JSON Schema, read back as overrides."""

from __future__ import annotations

from app.core.config import Settings
from app.training import round_form
from app.training.schemas import RoundConfig, default_config

DEFAULTS = default_config(Settings(_env_file=None))
SCHEMA = RoundConfig.model_json_schema()


def fields() -> dict[str, round_form.Field]:
    return {f.name: f for s in round_form.sections(DEFAULTS, SCHEMA) for f in s.fields}


def test_every_setting_gets_an_input_of_its_type():
    by_name = fields()
    leaves = {f"{k}.{sub}" for k, v in DEFAULTS.items() if isinstance(v, dict) for sub in v}
    assert set(by_name) == leaves | {k for k, v in DEFAULTS.items() if not isinstance(v, dict)}
    assert (by_name["activate"].kind, by_name["activate"].options) == ("boolean", ("true", "false"))
    assert (by_name["reference"].kind, by_name["reference"].options) == ("choice", ("base", "previous"))
    assert (by_name["ppo.kl_estimator"].kind, by_name["ppo.kl_estimator"].value) == ("choice", "k1")
    assert (by_name["ppo.batch_size"].kind, by_name["ppo.batch_size"].nullable) == ("integer", False)
    total = by_name["ppo.total_episodes"]
    assert (total.kind, total.nullable, total.value) == ("integer", True, "")
    assert by_name["reward.learning_rate"].kind == "number"
    assert by_name["gates.max_kl"].help.startswith("Mean per-answer KL")


def test_sections_follow_the_configuration_and_show_submitted_text():
    sections = round_form.sections(DEFAULTS, SCHEMA, {"ppo.kl_coef": "lots"})
    assert [s.name for s in sections] == ["", "data", "reward", "ppo", "evaluate", "gates"]
    kl = next(f for f in sections[3].fields if f.name == "ppo.kl_coef")
    assert kl.value == "lots"


def test_overrides_hold_only_what_changed():
    unchanged = {f.name: f.value for f in fields().values()}
    assert round_form.overrides(unchanged, DEFAULTS) == {}
    form = {
        **unchanged,
        "ppo.kl_coef": " 0.2 ",
        "activate": "false",
        "ppo.total_episodes": "64",
        "reward.center_rewards_coefficient": "",
        "unknown.field": "1",
    }
    assert round_form.overrides(form, DEFAULTS) == {
        "activate": "false",
        "ppo": {"kl_coef": "0.2", "total_episodes": "64"},
        "reward": {"center_rewards_coefficient": None},  # a blank field means None
    }


def test_fields_missing_from_the_form_keep_their_defaults():
    assert round_form.overrides({"gates.max_kl": "4"}, DEFAULTS) == {"gates": {"max_kl": "4"}}
