"""Bad input: one clear message naming the thing and the fix, exit 2, nothing recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
import sqlalchemy as sa
import yaml
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from governance.cli import app
from governance.store.database import make_engine, upgrade

POLICIES = Path(__file__).resolve().parents[2] / "policies"
runner = CliRunner()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'gate.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def numeric_model(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> Path:
    """A model that cannot cope with missing values: logistic regression on numbers."""
    train = pd.read_parquet(demo_dir / "train.parquet")
    columns = ["age", "education_num", "hours_per_week", "capital_gain"]
    model = LogisticRegression(max_iter=500).fit(train[columns], train["income"])
    path = tmp_path_factory.mktemp("model") / "numeric.skops"
    skops.io.dump(model, path)
    return path


def policy_file(tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    document = yaml.safe_load((POLICIES / "medium.yaml").read_text())
    edit(document)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def data_file(tmp_path: Path, demo_dir: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    path = tmp_path / "data.parquet"
    edit(pd.read_parquet(demo_dir / "test.parquet")).to_parquet(path)
    return path


def run_gate(database: str, demo_dir: Path, **options: object) -> tuple[int, str]:
    arguments = {
        "policy": POLICIES / "medium.yaml",
        "model": demo_dir / "income-full.skops",
        "data": demo_dir / "test.parquet",
        "reference": demo_dir / "train.parquet",
        "target": "income",
        "database": database,
        **options,
    }
    argv = ["gate"]
    for name, value in arguments.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    result = runner.invoke(app, argv)
    return result.exit_code, result.output


def decisions(database: str) -> int:
    with make_engine(database).connect() as connection:
        return connection.execute(sa.text("select count(*) from gate_decision")).scalar_one()


def check_rejected(database: str, demo_dir: Path, expected: list[str], **options: object) -> None:
    before = decisions(database)
    code, output = run_gate(database, demo_dir, **options)
    assert code == 2, output
    assert "Traceback" not in output
    text = " ".join(output.split())
    for fragment in expected:
        assert fragment in text, (fragment, output)
    assert decisions(database) == before


def test_good_input_is_recorded(database: str, demo_dir: Path) -> None:
    """The control case: the same call, well formed, records one decision."""
    before = decisions(database)
    code, output = run_gate(database, demo_dir)
    assert code in (0, 1), output
    assert decisions(database) == before + 1


def test_unknown_check_type(database: str, demo_dir: Path, tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        d["checks"][0]["type"] = "fairnes"

    check_rejected(database, demo_dir, ["checks[0].type: unknown check type 'fairnes'"],
                   policy=policy_file(tmp_path, edit))  # fmt: skip


def test_bad_threshold(database: str, demo_dir: Path, tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        d["checks"][2]["rules"][0]["min"] = "eighty"

    check_rejected(database, demo_dir, ["checks[2].rules[0].min: must be a number"],
                   policy=policy_file(tmp_path, edit))  # fmt: skip


def test_missing_field_and_unknown_key(database: str, demo_dir: Path, tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        del d["approvals"]
        d["checks"][0]["sensitive"] = ["sex"]

    check_rejected(
        database, demo_dir,
        ["approvals: required field is missing", "checks[0].sensitive: unknown key"],
        policy=policy_file(tmp_path, edit),
    )  # fmt: skip


def test_data_file_missing(database: str, demo_dir: Path, tmp_path: Path) -> None:
    check_rejected(database, demo_dir, ["nope.parquet: file not found"],
                   data=tmp_path / "nope.parquet")  # fmt: skip


def test_data_file_unreadable(database: str, demo_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    check_rejected(database, demo_dir, ["cannot be read as PARQUET", "valid PARQUET file"],
                   data=broken)  # fmt: skip


def test_data_file_of_the_wrong_format(database: str, demo_dir: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "data.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    check_rejected(database, demo_dir, ["unsupported format '.xlsx'", ".csv or .parquet"],
                   data=sheet)  # fmt: skip


def test_empty_data_set(database: str, demo_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("age,sex,income\n")
    check_rejected(database, demo_dir, ["empty.csv: has no rows"], data=empty)


def test_target_column_absent(database: str, demo_dir: Path) -> None:
    check_rejected(database, demo_dir, ["target column 'salary'", "--target"], target="salary")


def test_sensitive_column_absent(database: str, demo_dir: Path, tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        d["checks"][0]["sensitiveFeatures"] = ["age_group"]

    check_rejected(database, demo_dir, ["sensitive column(s) ['age_group']", "sensitiveFeatures"],
                   policy=policy_file(tmp_path, edit))  # fmt: skip


def test_group_below_min_group_size(database: str, demo_dir: Path, tmp_path: Path) -> None:
    def few_women(frame: pd.DataFrame) -> pd.DataFrame:
        women = frame.index[frame["sex"] == "Female"]
        return frame.drop(women[10:])

    check_rejected(
        database, demo_dir,
        ["sex=Female has 10 rows", "minGroupSize 30", "smallGroups: exclude"],
        data=data_file(tmp_path, demo_dir, few_women),
    )  # fmt: skip


def test_infinite_values_in_features(database: str, demo_dir: Path, tmp_path: Path) -> None:
    def infinite(frame: pd.DataFrame) -> pd.DataFrame:
        frame["hours_per_week"] = frame["hours_per_week"].astype(float)
        frame.loc[frame.index[:3], "hours_per_week"] = np.inf
        return frame

    check_rejected(database, demo_dir, ["infinite values in hours_per_week (3 rows)"],
                   data=data_file(tmp_path, demo_dir, infinite))  # fmt: skip


def test_nan_in_features_the_model_cannot_take(
    database: str, demo_dir: Path, tmp_path: Path, numeric_model: Path
) -> None:
    def holes(frame: pd.DataFrame) -> pd.DataFrame:
        frame["age"] = frame["age"].astype(float)
        frame.loc[frame.index[:5], "age"] = np.nan
        return frame

    check_rejected(
        database, demo_dir, ["model: cannot predict the data", "missing values in age"],
        model=numeric_model, data=data_file(tmp_path, demo_dir, holes),
    )  # fmt: skip


def test_model_that_cannot_predict_the_columns(
    database: str, demo_dir: Path, tmp_path: Path
) -> None:
    check_rejected(
        database, demo_dir, ["lacks column(s) the model was trained on: occupation"],
        data=data_file(tmp_path, demo_dir, lambda f: f.drop(columns=["occupation"])),
    )  # fmt: skip


def test_file_that_is_not_a_model(database: str, demo_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "model.skops"
    fake.write_text("age,income\n1,0\n")
    check_rejected(database, demo_dir, ["model.skops: is not a readable skops model"], model=fake)


def test_file_of_an_unknown_model_format(database: str, demo_dir: Path) -> None:
    check_rejected(database, demo_dir, ["unsupported model format '.parquet'"],
                   model=demo_dir / "test.parquet")  # fmt: skip


def test_usage_error_exits_2(demo_dir: Path) -> None:
    result = runner.invoke(app, ["gate", "--data", str(demo_dir / "test.parquet")])
    assert result.exit_code == 2
    assert "--policy is required" in result.output
