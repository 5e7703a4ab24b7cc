/* pipeline--0.1--0.2.sql: upgrades the pipeline extension from 0.1 to 0.2 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.2'" to load this file. \quit
