<?php
define("SM_VERSION","25.100.200");
define("SM_VERSION_DATE","2025-09-15 10:00:00");
