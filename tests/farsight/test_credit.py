"""GB 32100-2015 unified social credit codes."""

from hypothesis import given
from hypothesis import strategies as st

from farsight.credit import (
    ALPHABET,
    check_char,
    credit_code_problem,
    is_valid_credit_code,
    make_credit_code,
)

# The example code printed in GB 32100-2015 and a published business registration.
KNOWN_VALID = ["91350100M000100Y43", "91110000802100433B"]


def test_known_codes_have_valid_check_characters() -> None:
    for code in KNOWN_VALID:
        assert credit_code_problem(code) is None, code


def test_changed_check_character_is_refused() -> None:
    code = KNOWN_VALID[0]
    wrong = ALPHABET[(ALPHABET.index(code[-1]) + 1) % 31]
    problem = credit_code_problem(code[:-1] + wrong)
    assert problem is not None and "check character" in problem


def test_excluded_letters_and_lengths_are_refused() -> None:
    assert "alphabet" in (credit_code_problem("91350100M000100YO3") or "")
    assert "18 characters" in (credit_code_problem("91350100M000100Y4") or "")


@given(st.text(alphabet=ALPHABET, min_size=17, max_size=17))
def test_made_codes_validate_and_any_single_substitution_is_caught(first17: str) -> None:
    code = make_credit_code(first17)
    assert is_valid_credit_code(code)
    # A weighted mod-31 check with weights coprime to 31 catches every single substitution.
    for pos in (0, 8, 16):
        c = code[pos]
        other = ALPHABET[(ALPHABET.index(c) + 7) % 31]
        assert not is_valid_credit_code(code[:pos] + other + code[pos + 1 :])
    assert check_char(first17) == code[-1]
