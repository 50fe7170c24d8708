"""The names the fitters accept, in a module without torch: the config checks read them before
anything heavy loads, so a misspelt form is answered at once."""

# Law forms of L(N, D) (tinygpt.scaling.laws.forms).
FORMS = ("chinchilla", "kaplan_q", "farseer_lite", "translog")
# Whole-curve laws and their optimizers (tinygpt.scaling.curves.laws).
CURVE_LAWS = ("mpl", "tissue")
CURVE_OPTIMIZERS = ("adamw", "lbfgs")
