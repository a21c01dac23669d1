<?php
// Stand-in for the vendor's console updater (bitrix/bitrix.php update:modules [-m a,b] [-n]).
// It installs the release a test staged on the box's "update server" (<box>/var/lib/update-server)
// and behaves like the real CLI as DOMAIN.md documents it: updater.log lines, exit 0/1, output
// that ends with "Updates installed successfully." / "No updates found.", and "Update System
// upgraded successfully. Restart the command." when the update system upgrades itself first.
// It prints nothing else: what the real CLI prints besides (a list of modules? progress?) is not
// documented, so no test and no playbook may come to rely on it.
if (PHP_SAPI !== 'cli') {
    exit(1);
}
$docroot = realpath(__DIR__ . '/..');
$boxRoot = realpath($docroot . '/../../..');
$server = $boxRoot . '/var/lib/update-server/release';
$log = $docroot . '/bitrix/modules/updater.log';

function out(string $s): void { fwrite(STDOUT, $s . "\n"); }
function upd_log(string $log, string $code, string $text): void
{
    file_put_contents($log, date('Y-m-d H:i:s') . " - $code - $text\n", FILE_APPEND | LOCK_EX);
}
function php_define(string $file, string $name): ?string
{
    $text = @file_get_contents($file);
    if ($text !== false && preg_match('/define\(\s*"' . preg_quote($name, '/') . '"\s*,\s*"([^"]*)"/', $text, $m)) {
        return $m[1];
    }
    return null;
}
function module_version(string $docroot, string $module): ?string
{
    $text = @file_get_contents("$docroot/bitrix/modules/$module/install/version.php");
    if ($text !== false && preg_match('/"VERSION"\s*=>\s*"([^"]*)"/', $text, $m)) {
        return $m[1];
    }
    return null;
}
function copy_tree(string $from, string $to): void
{
    if (!is_dir($from)) {
        return;
    }
    $it = new RecursiveIteratorIterator(new RecursiveDirectoryIterator($from, FilesystemIterator::SKIP_DOTS),
        RecursiveIteratorIterator::SELF_FIRST);
    foreach ($it as $item) {
        $target = $to . '/' . substr($item->getPathname(), strlen($from) + 1);
        if ($item->isDir()) {
            @mkdir($target, 0755, true);
        } else {
            copy($item->getPathname(), $target);
        }
    }
}

$args = array_slice($argv, 1);
$command = $args[0] ?? 'list';
if ($command !== 'update:modules') {
    out("Bitrix console (test box stand-in)\n\nAvailable commands:\n  update:modules  Install module updates");
    exit($command === 'list' ? 0 : 1);
}
$noInteraction = in_array('-n', $args, true) || in_array('--no-interaction', $args, true);
$only = null;
foreach ($args as $i => $a) {
    if ($a === '-m' && isset($args[$i + 1])) {
        $only = explode(',', $args[$i + 1]);
    } elseif (str_starts_with($a, '--modules=')) {
        $only = explode(',', substr($a, 10));
    }
}

$release = @json_decode((string) @file_get_contents("$server/release.json"), true);
if (!is_array($release)) {
    out("No updates found.");
    exit(0);
}

// The update system upgrades itself before anything else, one version per call
// ("update_system_steps": a release that asks to be restarted several times).
$clientFile = "$docroot/bitrix/modules/main/classes/general/update_client.php";
$have = php_define($clientFile, 'UPDATE_SYSTEM_VERSION') ?? '0';
$need = null;
foreach ($release['update_system_steps'] ?? (isset($release['update_system_version']) ? [$release['update_system_version']] : []) as $step) {
    if (version_compare($have, $step, '<')) {
        $need = $step;
        break;
    }
}
if ($need !== null) {
    file_put_contents($clientFile, "<?php\n// Version of the update system.\ndefine(\"UPDATE_SYSTEM_VERSION\", \"$need\");\n");
    upd_log($log, 'UPD_SUCCESS', "Update system upgraded to version $need");
    out("Update System upgraded successfully. Restart the command.");
    exit(0);
}

$pending = [];
foreach ($release['modules'] as $m) {
    $current = module_version($docroot, $m['id']);
    if (($only === null || in_array($m['id'], $only, true)) && $current !== null
        && version_compare($current, $m['version'], '<')) {
        $pending[] = $m + ['from' => $current];
    }
}
if (!$pending) {
    out("No updates found.");
    exit(0);
}
if (!$noInteraction) {
    // The real CLI asks for a confirmation (DOMAIN.md); its wording is not documented, so none is printed.
    $answer = trim((string) fgets(STDIN));
    if (!in_array(strtolower($answer), ['y', 'yes'], true)) {
        exit(1);
    }
}
upd_log($log, 'UPD_NOTE', 'Installation of updates started');

if (($release['behaviour'] ?? '') === 'hang') {
    // The real updater has been seen to never return; bounded at an hour so nothing lingers forever.
    @file_put_contents("$boxRoot/run/updater-hang.pid", getmypid() . "\n");
    for ($i = 0; $i < 3600; $i++) {
        sleep(1);
    }
    exit(1);
}

if (($release['behaviour'] ?? '') === 'pause') {
    // lets a test look at the portal while an update runs: waits for the test's "go" (at most 120 s)
    for ($i = 0; $i < 1200 && !file_exists("$server/go"); $i++) {
        usleep(100000);
    }
}

$settings = include "$docroot/bitrix/.settings.php";
$c = $settings['connections']['value']['default'];
$hp = explode(':', $c['host'], 2);
mysqli_report(MYSQLI_REPORT_OFF);
$db = @mysqli_connect($hp[0], $c['login'], $c['password'], $c['database'], (int) ($hp[1] ?? 3306));
if (!$db) {
    upd_log($log, 'UPD_ERROR', 'Cannot connect to the database: ' . mysqli_connect_error());
    exit(1);
}

foreach ($pending as $m) {
    $id = $m['id'];
    $sqlFile = "$server/sql/$id.sql";
    if (is_file($sqlFile)) {
        $statements = array_filter(array_map('trim', explode(";\n", (string) file_get_contents($sqlFile))));
        foreach ($statements as $n => $stmt) {
            if (str_starts_with($stmt, '--') && !str_contains($stmt, "\n")) {
                continue;
            }
            if (!$db->query($stmt)) {
                $e = $db->error;
                upd_log($log, 'UPD_ERROR', "[$id] Error installing update: SQL error in statement " . ($n + 1) . ": $e");
                exit(1);
            }
        }
    }
    copy_tree("$server/files/$id", "$docroot/bitrix/modules/$id");
    if (in_array($id, $release['incomplete'] ?? [], true)) {
        // a fault release: the module's migration ran but its new version never landed, and the
        // updater still reports success
        continue;
    }
    $date = date('Y-m-d H:i:s');
    file_put_contents("$docroot/bitrix/modules/$id/install/version.php",
        "<?php\n\$arModuleVersion = array(\n\t\"VERSION\" => \"{$m['version']}\",\n\t\"VERSION_DATE\" => \"$date\"\n);\n");
    if ($id === 'main') {
        file_put_contents("$docroot/bitrix/modules/main/classes/general/version.php",
            "<?php\ndefine(\"SM_VERSION\",\"{$m['version']}\");\ndefine(\"SM_VERSION_DATE\",\"$date\");\n");
    }
    upd_log($log, 'UPD_SUCCESS', "Module $id updated to version {$m['version']}");
}
upd_log($log, 'UPD_NOTE', 'Installation of updates finished');
out("Updates installed successfully.");
exit(0);
