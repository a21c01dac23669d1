<?php
// A release's cron entry point that no longer runs agents (a broken agent runner): it exits 0 and,
// like the real one, prints nothing.
$_SERVER['DOCUMENT_ROOT'] = realpath(__DIR__ . '/../../../..');
