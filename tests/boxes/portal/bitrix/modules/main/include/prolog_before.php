<?php
// Kernel bootstrap of the test portal: version, kernel library, DB connection from .settings.php.
require_once __DIR__ . '/../classes/general/version.php';
require_once __DIR__ . '/../lib/kernel.php';
bx_kernel_boot();
