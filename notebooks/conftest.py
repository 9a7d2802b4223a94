"""nbval (`make test`) leaves out the notebooks still in progress: see usnb.notebooks.IN_PROGRESS for why."""
from usnb.notebooks import IN_PROGRESS

collect_ignore = [f"{name}.ipynb" for name in IN_PROGRESS]
