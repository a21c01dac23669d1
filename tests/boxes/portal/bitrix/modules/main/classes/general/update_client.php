<?php
// Version of the update system (the self-upgrade release raises it before installing modules).
define("UPDATE_SYSTEM_VERSION", "25.0.0");
