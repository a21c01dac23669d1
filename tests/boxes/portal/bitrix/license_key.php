<?php // licence key of the test portal
$LICENSE_KEY = "TST-BX-000000000000";
