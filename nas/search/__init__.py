"""Multi-trial search: strategies behind one ask/tell interface (`nas.search.strategies`), the Ray Tune
runner (`nas.search.runner`) and the results folder (`nas.search.results`)."""
