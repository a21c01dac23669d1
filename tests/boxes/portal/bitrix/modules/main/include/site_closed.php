<?php
// The page a visitor gets while the public part is closed (b_option main/site_stopped = 'Y').
http_response_code(503);
header('Retry-After: 600');
?><!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Site closed</title></head>
<body><p id="site-closed">The site is closed for maintenance. Please come back later.</p></body></html>
