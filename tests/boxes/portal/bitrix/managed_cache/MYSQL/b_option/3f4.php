<?php $v = array("main" => "cached");
