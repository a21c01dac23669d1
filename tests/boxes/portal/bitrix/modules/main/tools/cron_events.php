<?php
// Cron entry point (php -f bitrix/modules/main/tools/cron_events.php): runs due agents and
// sends queued mail, like the real one run from /etc/cron.d/bx_<db> every minute. Like the real
// one it prints nothing: what it did is seen in the database (b_agent.LAST_EXEC, b_event).
$_SERVER['DOCUMENT_ROOT'] = realpath(__DIR__ . '/../../../..');
require_once __DIR__ . '/../lib/kernel.php';
$db = bx_connect();
$db->query("UPDATE b_agent SET LAST_EXEC=NOW(), NEXT_EXEC=NOW() + INTERVAL AGENT_INTERVAL SECOND, DATE_CHECK=NULL WHERE ACTIVE='Y' AND NEXT_EXEC <= NOW()") or exit(1);
$res = $db->query("SELECT ID, EVENT_NAME FROM b_event WHERE SUCCESS_EXEC='N' ORDER BY ID LIMIT 10") or exit(1);
while ($row = $res->fetch_assoc()) {
    $db->query("UPDATE b_event SET SUCCESS_EXEC='Y', DATE_EXEC=NOW() WHERE ID=" . (int) $row['ID']);
}
