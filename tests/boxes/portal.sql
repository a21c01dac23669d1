-- Pristine content of a test portal's database (loaded into the MariaDB template, and again by
-- `reset`). Table shapes follow the real Bitrix tables the monitoring and the playbooks read.
CREATE TABLE b_option (
  MODULE_ID varchar(50) NOT NULL, NAME varchar(100) NOT NULL, VALUE longtext NULL,
  DESCRIPTION varchar(255) NULL, SITE_ID char(2) NULL, PRIMARY KEY (MODULE_ID, NAME)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO b_option (MODULE_ID, NAME, VALUE) VALUES
  ('main', '~support_finish_date', DATE_FORMAT(CURDATE() + INTERVAL 365 DAY, '%Y-%m-%d')),
  ('main', 'site_name', 'Test portal'),
  ('main', 'site_checker_success', 'Y'),
  ('main', 'update_site', 'www.bitrixsoft.com'),
  ('main', '~db_version', '25.100.200'),
  ('main', 'email_from', 'portal@example.test'),
  ('crm', 'default_currency', 'RUB');

CREATE TABLE b_agent (
  ID int NOT NULL AUTO_INCREMENT, MODULE_ID varchar(50) NULL, SORT int NOT NULL DEFAULT 100,
  NAME text NULL, ACTIVE char(1) NOT NULL DEFAULT 'Y', LAST_EXEC datetime NULL, NEXT_EXEC datetime NOT NULL,
  DATE_CHECK datetime NULL, AGENT_INTERVAL int NULL DEFAULT 86400, IS_PERIOD char(1) NULL DEFAULT 'Y',
  USER_ID int NULL, RUNNING char(1) NOT NULL DEFAULT 'N', PRIMARY KEY (ID)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO b_agent (MODULE_ID, NAME, ACTIVE, LAST_EXEC, NEXT_EXEC, AGENT_INTERVAL) VALUES
  ('main', '\\Bitrix\\Main\\Analytics\\CounterDataTable::submitData();', 'Y', NOW() - INTERVAL 2 MINUTE, NOW() - INTERVAL 1 MINUTE, 60),
  ('main', 'CEvent::CleanUpAgent();', 'Y', NOW() - INTERVAL 2 MINUTE, NOW() - INTERVAL 1 MINUTE, 60),
  ('crm', '\\Bitrix\\Crm\\Agent\\Activity\\ActivityAgent::run();', 'Y', NOW() - INTERVAL 3 MINUTE, NOW() - INTERVAL 1 MINUTE, 60),
  ('tasks', 'CTaskCountersProcessor::agent();', 'N', NOW() - INTERVAL 30 DAY, NOW() - INTERVAL 29 DAY, 86400);

CREATE TABLE b_event (
  ID int NOT NULL AUTO_INCREMENT, EVENT_NAME varchar(255) NOT NULL, MESSAGE_ID int NULL, LID varchar(255) NOT NULL,
  C_FIELDS longtext NULL, DATE_INSERT datetime NULL, DATE_EXEC datetime NULL,
  SUCCESS_EXEC char(1) NOT NULL DEFAULT 'N', DUPLICATE char(1) NOT NULL DEFAULT 'Y', LANGUAGE_ID char(2) NULL,
  PRIMARY KEY (ID), KEY ix_success (SUCCESS_EXEC)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO b_event (EVENT_NAME, LID, C_FIELDS, DATE_INSERT, DATE_EXEC, SUCCESS_EXEC) VALUES
  ('USER_INFO', 's1', 'a:1:{s:5:"EMAIL";s:17:"ivanov@example.test";}', NOW() - INTERVAL 1 DAY, NOW() - INTERVAL 1 DAY, 'Y'),
  ('CRM_DEAL_ASSIGNED', 's1', 'a:1:{s:5:"EMAIL";s:17:"petrov@example.test";}', NOW() - INTERVAL 5 MINUTE, NULL, 'N'),
  ('TASK_REMINDER', 's1', 'a:1:{s:5:"EMAIL";s:18:"sidorov@example.test";}', NOW() - INTERVAL 3 MINUTE, NULL, 'N');

CREATE TABLE b_event_log (
  ID int NOT NULL AUTO_INCREMENT, TIMESTAMP_X timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  SEVERITY varchar(50) NOT NULL, AUDIT_TYPE_ID varchar(50) NOT NULL, MODULE_ID varchar(50) NOT NULL,
  ITEM_ID varchar(255) NOT NULL, DESCRIPTION mediumtext NULL, PRIMARY KEY (ID)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO b_event_log (TIMESTAMP_X, SEVERITY, AUDIT_TYPE_ID, MODULE_ID, ITEM_ID, DESCRIPTION) VALUES
  (NOW() - INTERVAL 20 HOUR, 'INFO', 'BACKUP_SUCCESS', 'main', 'backup', 'Backup finished');

CREATE TABLE b_user (
  ID int NOT NULL AUTO_INCREMENT, LOGIN varchar(50) NOT NULL, NAME varchar(50) NULL, LAST_NAME varchar(50) NULL,
  EMAIL varchar(255) NULL, ACTIVE char(1) NOT NULL DEFAULT 'Y', PRIMARY KEY (ID), UNIQUE KEY ux_login (LOGIN)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO b_user (LOGIN, NAME, LAST_NAME, EMAIL) VALUES
  ('admin', 'Admin', 'Portal', 'admin@example.test'),
  ('ivanov', 'Иван', 'Иванов', 'ivanov@example.test'),
  ('petrov', 'Пётр', 'Петров', 'petrov@example.test'),
  ('sidorov', 'Сидор', 'Сидоров', 'sidorov@example.test');

CREATE TABLE b_crm_deal (
  ID int NOT NULL AUTO_INCREMENT, TITLE varchar(255) NOT NULL, OPPORTUNITY decimal(18,2) NULL,
  STAGE_ID varchar(50) NULL, ASSIGNED_BY_ID int NULL, DATE_CREATE datetime NULL, PRIMARY KEY (ID)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO b_crm_deal (TITLE, OPPORTUNITY, STAGE_ID, ASSIGNED_BY_ID, DATE_CREATE) VALUES
  ('Поставка серверов', 1250000.00, 'NEW', 2, '2025-10-01 09:30:00'),
  ('Лицензии 1С', 380000.00, 'PREPARATION', 3, '2025-10-03 11:00:00'),
  ('Внедрение CRM', 920000.00, 'WON', 2, '2025-10-07 15:45:00'),
  ('Техподдержка 2026', 240000.00, 'NEW', 4, '2025-10-12 10:15:00'),
  ('Обучение персонала', 75000.00, 'LOSE', 3, '2025-10-20 16:20:00');

CREATE TABLE b_module (ID varchar(50) NOT NULL, DATE_ACTIVE timestamp NULL, PRIMARY KEY (ID)) ENGINE=InnoDB;
INSERT INTO b_module (ID, DATE_ACTIVE) VALUES ('main', '2025-01-10 10:00:00'), ('crm', '2025-01-10 10:00:00'),
  ('tasks', '2025-01-10 10:00:00');
