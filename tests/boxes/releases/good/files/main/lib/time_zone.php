<?php
// Added by release 25.100.300 of the test portal.
function bx_user_time_zone(): string
{
    return 'Europe/Moscow';
}
