<?php
// Control panel entry page of the test portal (the login form of a real portal).
require $_SERVER['DOCUMENT_ROOT'] . '/bitrix/modules/main/include/prolog_before.php';
$agents = bx_query_one("SELECT COUNT(*) FROM b_agent WHERE ACTIVE='Y'");
$licence = bx_option('main', '~support_finish_date');
?><!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Control panel - Bitrix24</title></head>
<body>
<h1>Bitrix24: control panel</h1>
<form method="post" action="/bitrix/admin/"><input name="USER_LOGIN"><input type="password" name="USER_PASSWORD"></form>
<p>Version: <span id="sm-version"><?= SM_VERSION ?></span> (<?= SM_VERSION_DATE ?>)</p>
<p>Active agents: <?= (int) $agents ?>; licence until <?= htmlspecialchars((string) $licence) ?><?= bx_licence_warning($licence) ?></p>
<p id="status">ADMIN_OK</p>
</body></html>
