<?php
// Public page of the test portal: reads b_option and b_agent, shows the kernel version.
require $_SERVER['DOCUMENT_ROOT'] . '/bitrix/modules/main/include/prolog_before.php';
$licence = bx_option('main', '~support_finish_date');
$agents = bx_query_one("SELECT MAX(LAST_EXEC) FROM b_agent WHERE ACTIVE='Y'");
$deals = bx_query_one("SELECT COUNT(*) FROM b_crm_deal");
$mail = bx_query_one("SELECT COUNT(*) FROM b_event WHERE SUCCESS_EXEC='N'");
?><!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Bitrix24</title></head>
<body>
<h1><?= htmlspecialchars((string) bx_option('main', 'site_name')) ?></h1>
<p>SM_VERSION: <span id="sm-version"><?= SM_VERSION ?></span></p>
<p>Licence until: <span id="licence"><?= htmlspecialchars((string) $licence) ?></span><?= bx_licence_warning($licence) ?></p>
<p>Agents last run: <span id="agents"><?= htmlspecialchars((string) $agents) ?></span></p>
<p>Deals: <span id="deals"><?= (int) $deals ?></span>; mail queue: <span id="mail-queue"><?= (int) $mail ?></span></p>
<p id="status">PORTAL_OK</p>
</body></html>
