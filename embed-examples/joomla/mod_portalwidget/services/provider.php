<?php

/**
 * The module's services for Joomla 4/5: its dispatcher and its helper, found by namespace.
 */

\defined('_JEXEC') or die;

use Joomla\CMS\Extension\Service\Provider\HelperFactory;
use Joomla\CMS\Extension\Service\Provider\Module;
use Joomla\CMS\Extension\Service\Provider\ModuleDispatcherFactory;
use Joomla\DI\Container;
use Joomla\DI\ServiceProviderInterface;

return new class () implements ServiceProviderInterface {
    public function register(Container $container): void
    {
        $container->registerServiceProvider(new ModuleDispatcherFactory('\\Portal\\Module\\PortalWidget'));
        $container->registerServiceProvider(new HelperFactory('\\Portal\\Module\\PortalWidget\\Site\\Helper'));
        $container->registerServiceProvider(new Module());
    }
};
