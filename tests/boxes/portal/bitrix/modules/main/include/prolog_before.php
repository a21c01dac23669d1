<?php
// Kernel bootstrap of the test portal: version, kernel library, DB connection from .settings.php.
require_once __DIR__ . '/../classes/general/version.php';
require_once __DIR__ . '/../lib/kernel.php';
bx_kernel_boot();
// "Close the public part of the site" (b_option main/site_stopped = 'Y'): visitors of a public page
// get the kernel's "site closed" page; the control panel (/bitrix/admin/) stays reachable, as on a
// real portal where administrators keep working. The closed page's wording and its HTTP status (503
// here) are assumptions [unverified]; this stand-in has no logged-in administrators.
if (!str_starts_with((string) ($_SERVER['SCRIPT_NAME'] ?? ''), '/bitrix/admin/')
    && bx_option('main', 'site_stopped') === 'Y') {
    require __DIR__ . '/site_closed.php';
    exit;
}
