<?php
// Kernel library of the test portal. Real Bitrix prints "DB query error." with HTTP 200 when a
// query fails, and this stand-in does the same (the dangerous kind of broken page).
function bx_settings(): array
{
    return include __DIR__ . '/../../../.settings.php';
}

function bx_connect(): mysqli
{
    static $db = null;
    if ($db !== null) {
        return $db;
    }
    $c = bx_settings()['connections']['value']['default'];
    $parts = explode(':', $c['host'], 2);
    mysqli_report(MYSQLI_REPORT_OFF);
    $db = @mysqli_connect($parts[0], $c['login'], $c['password'], $c['database'], (int) ($parts[1] ?? 3306));
    if (!$db) {
        http_response_code(500);
        header('Content-Type: text/html; charset=utf-8');
        echo "<html><body><h1>Error connecting to database</h1><p>" . htmlspecialchars(mysqli_connect_error()) . "</p></body></html>";
        exit;
    }
    $db->set_charset('utf8mb4');
    return $db;
}

function bx_query(string $sql): mysqli_result|bool
{
    $res = bx_connect()->query($sql);
    if ($res === false) {
        error_log('DB query error: ' . bx_connect()->error . ' in ' . $sql);
        echo "<html><body><b>DB query error.</b><br>Please try later.</body></html>";
        exit;
    }
    return $res;
}

function bx_query_one(string $sql): mixed
{
    $row = bx_query($sql)->fetch_row();
    return $row ? $row[0] : null;
}

function bx_option(string $module, string $name): ?string
{
    $db = bx_connect();
    $sql = sprintf("SELECT VALUE FROM b_option WHERE MODULE_ID='%s' AND NAME='%s'",
        $db->real_escape_string($module), $db->real_escape_string($name));
    $v = bx_query_one($sql);
    return $v === null ? null : (string) $v;
}

function bx_licence_warning(?string $date): string
{
    if ($date !== null && $date !== '' && $date < date('Y-m-d')) {
        return ' <b id="licence-expired">Your license has expired</b>';
    }
    return '';
}

function bx_kernel_boot(): void
{
    header('X-Powered-CMS: Bitrix Site Manager (test box)');
    bx_connect();
}
