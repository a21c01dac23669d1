<?php
$arModuleVersion = array(
	"VERSION" => "25.100.200",
	"VERSION_DATE" => "2025-09-15 10:00:00"
);
