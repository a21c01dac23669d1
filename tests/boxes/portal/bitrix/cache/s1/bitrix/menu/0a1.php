<?php $arResult = array("menu" => array("CRM", "Tasks"));
