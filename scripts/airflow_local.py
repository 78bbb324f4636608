"""`make airflow`: Airflow standalone with the DAGs, embedded S3 and the demo site."""

import sys

from newsflow_dev.airflow_local import main

sys.exit(main())
