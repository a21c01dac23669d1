"""The Bitrix signals of ../shared/DOMAIN.md ("Bitrix health signals"), one check type per signal
(``bitrix_licence``, ``bitrix_agents``, ``bitrix_mail_queue``, ``bitrix_backup``,
``bitrix_updates``, ``bitrix_site_checker``, ``bitrix_php_fatals``, ``bitrix_push_server``), each
taking a site's ``docroot`` and ``site`` name (:mod:`agent.checks.bitrix.portal`), and the
``bitrix:`` profile block of the agent config that expands into them
(:mod:`agent.checks.bitrix.profile`)."""
