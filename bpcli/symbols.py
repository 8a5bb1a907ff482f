"""The symbols bpcli prints (·, θ, ŷ, ², →) and how they read where a terminal cannot show them.

Kept apart from the console so that the command line can use it without importing rich's
tables (`bpcli --help` stays fast).
"""

from __future__ import annotations

# How the symbols bpcli prints read on a terminal that cannot show them (latin-1, ASCII).
_PLAIN = str.maketrans({
    "·": "*", "−": "-", "×": "*", "÷": "/", "→": "->", "←": "<-", "⟵": "<-", "…": "...", "—": "-", "–": "-",
    "≈": "~", "±": "+/-", "√": "sqrt", "²": "^2", "¹": "^1", "⁻": "^-", "ᵀ": "^T", "ᵢ": "_i", "ŷ": "y_hat",
    "θ": "theta", "λ": "lambda", "σ": "sigma", "μ": "mu", "µ": "mu", "Σ": "sum", "Π": "prod",
    "∇": "grad", "⟨": "<", "⟩": ">", "κ": "kappa", "ȳ": "y_bar", "ρ": "rho", "ε": "eps", "β": "beta",
    "₁": "_1", "₂": "_2", "ᵗ": "^t", "ᵏ": "^k", "∞": "inf", "⁰": "^0", "³": "^3",
    "∂": "del ",  # a partial derivative must not read as a total one (dJ/du)
})


def plain(text: str, encoding: str | None) -> str:
    """`text` as a stream in `encoding` can write it: symbols it cannot hold spelled in ASCII."""
    encoding = encoding or "utf-8"
    try:
        text.encode(encoding)
        return text
    except (UnicodeEncodeError, LookupError):
        return text.translate(_PLAIN).encode(encoding, errors="replace").decode(encoding)
